//! The tickets service: sells and edits tickets on `/api/tickets`, publishes `ticket:created`
//! and `ticket:updated`, and reserves and releases tickets on `order:created` and
//! `order:cancelled` (queue group `tickets-service`), version-checking order events against its
//! replica of orders.

pub mod configuration;
pub mod listeners;
pub mod models;
pub mod routes;
pub mod startup;
