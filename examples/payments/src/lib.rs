//! The payments service: pays for orders on `/api/payments` through a provider (a fake that
//! behaves like Stripe's test mode, or Stripe), with exactly one charge per order; publishes
//! `payment:created`; keeps a versioned replica of orders from `order:created`,
//! `order:cancelled` and `order:completed` (queue group `payments-service`), and refunds a
//! charge whose order was cancelled first.

pub mod configuration;
pub mod listeners;
pub mod models;
pub mod provider;
pub mod routes;
pub mod startup;
