//! The payments service: pays for orders on `/api/payments` through a provider (a fake that
//! behaves like Stripe's test mode, or Stripe), with exactly one charge per order; publishes
//! `payment:created`; keeps a versioned replica of orders from `order:created`,
//! `order:cancelled` and `order:completed` (queue group `payments-service`), and refunds a
//! charge whose order was cancelled first. Attempts left pending — by a crash between the
//! charge and the commit, a provider that did not answer or a store that failed — are settled
//! by the repair ([`settle::Repair`]), which asks the provider again with the attempt's own
//! idempotency key: one charge, not two.

pub mod configuration;
pub mod listeners;
pub mod models;
pub mod provider;
pub mod routes;
pub mod settle;
pub mod startup;
