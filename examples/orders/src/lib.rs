//! The orders service: reserves tickets atomically on `/api/orders`, lists and cancels orders,
//! publishes `order:created` and `order:cancelled`, and keeps a replica of tickets from
//! `ticket:created` and `ticket:updated` (queue group `orders-service`) on the versioned
//! contract. `expiration:complete` cancels an order that is not complete.

pub mod configuration;
pub mod listeners;
pub mod models;
pub mod routes;
pub mod startup;
