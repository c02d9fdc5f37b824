//! The listeners of the orders service (queue group `orders-service`), one file per event.

mod expiration_complete;
mod ticket_created;
mod ticket_updated;

pub use expiration_complete::ExpirationCompleteListener;
pub use ticket_created::TicketCreatedListener;
pub use ticket_updated::TicketUpdatedListener;

use ticketing_core::events::queue_groups;
use ticketing_core::store::{TicketReplica, TicketReplicaStore};
use ticketing_core::version::EventDisposition;
use ticketing_core::{HandlerError, StoreError};

/// The queue group of every listener here.
pub const QUEUE_GROUP: &str = queue_groups::ORDERS_SERVICE;

/// Applies a ticket event to the replica on the versioned contract: Apply writes (copying the
/// version from the event), Duplicate acks, Gap retries soon.
async fn replicate(
    replicas: &dyn TicketReplicaStore,
    ticket: TicketReplica,
) -> Result<(), HandlerError> {
    let lookup = replicas.find_by_event(ticket.id, ticket.version).await?;
    match lookup.disposition {
        EventDisposition::Apply => {}
        EventDisposition::Duplicate => return Ok(()),
        EventDisposition::Gap => return Err(lookup.gap_error()),
    }
    match replicas.apply(&ticket).await {
        // Another member applied the same event meanwhile.
        Ok(()) | Err(StoreError::VersionConflict { .. }) => {
            tracing::info!(ticket = %ticket.id, version = ticket.version, "ticket replicated");
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}
