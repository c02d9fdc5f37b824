//! The listeners of the tickets service (queue group `tickets-service`), one file per event.

mod order_cancelled;
mod order_completed;
mod order_created;

pub use order_cancelled::OrderCancelledListener;
pub use order_completed::OrderCompletedListener;
pub use order_created::OrderCreatedListener;

use ticketing_core::StoreError;
use ticketing_core::ticketing::events::queue_groups;
use ticketing_core::ticketing::store::{OrderReplica, OrderReplicaStore, Ticket, TicketStore};
use ticketing_core::{HandlerError, Id};

/// The queue group of every listener here.
pub const QUEUE_GROUP: &str = queue_groups::TICKETS_SERVICE;

/// The ticket an order event is about; an unknown ticket is a permanent failure.
async fn ticket_of(
    tickets: &dyn TicketStore,
    order: Id,
    ticket: Id,
) -> Result<Ticket, HandlerError> {
    match tickets.get(ticket).await {
        Ok(ticket) => Ok(ticket),
        Err(StoreError::NotFound { .. }) => Err(HandlerError::permanent(format!(
            "order {order} is for unknown ticket {ticket}"
        ))),
        Err(e) => Err(e.into()),
    }
}

/// Records an applied order event in the replica. A conflict means another member applied the
/// same event meanwhile: done either way.
async fn record(
    replicas: &dyn OrderReplicaStore,
    order: &OrderReplica,
) -> Result<(), HandlerError> {
    match replicas.apply(order).await {
        Ok(()) | Err(StoreError::VersionConflict { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
