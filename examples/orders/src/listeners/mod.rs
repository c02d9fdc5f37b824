//! The listeners of the orders service (queue group `orders-service`), one file per concern.

mod expiration_complete;
mod payment_created;
mod tickets;

pub use expiration_complete::expiration_complete;
pub use payment_created::payment_created;
pub use tickets::{TicketEvent, ticket_created, ticket_event, ticket_updated};

use ticketing_core::ticketing::events::queue_groups;

/// The queue group of every listener here.
pub const QUEUE_GROUP: &str = queue_groups::ORDERS_SERVICE;
