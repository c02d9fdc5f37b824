//! The listeners of the orders service (queue group `orders-service`), one file per event.

mod expiration_complete;
mod payment_created;
mod ticket_created;
mod ticket_updated;

pub use expiration_complete::ExpirationCompleteListener;
pub use payment_created::PaymentCreatedListener;
pub use ticket_created::TicketCreatedListener;
pub use ticket_updated::TicketUpdatedListener;

use std::marker::PhantomData;
use std::sync::Arc;

use async_trait::async_trait;
use ticketing_core::store;
use ticketing_core::ticketing::events::queue_groups;
use ticketing_core::ticketing::store::{TicketReplica, TicketReplicaStore};
use ticketing_core::{Event, Handler, HandlerError, MessageContext};

/// The queue group of every listener here.
pub const QUEUE_GROUP: &str = queue_groups::ORDERS_SERVICE;

/// Applies a ticket event to the replica on the versioned contract: Apply writes (copying the
/// version from the event), Duplicate acks, Gap retries soon.
async fn replicate(
    replicas: &dyn TicketReplicaStore,
    ticket: TicketReplica,
) -> Result<(), HandlerError> {
    let (id, version) = (ticket.id, ticket.version);
    if store::replicate(replicas, &id, version, |_| Ok(ticket))
        .await?
        .is_some()
    {
        tracing::info!(ticket = %id, version, "ticket replicated");
    }
    Ok(())
}

/// A ticket event the replica follows: `ticket:created` and `ticket:updated` carry the same
/// replicated fields.
pub trait TicketEvent: Event {
    /// The replica record the event carries.
    fn into_replica(self) -> TicketReplica;
}

/// Keeps the replica of tickets on one ticket event `E`, on the versioned contract.
pub struct TicketReplicaListener<E> {
    /// The replica of tickets.
    pub tickets: Arc<dyn TicketReplicaStore>,
    event: PhantomData<fn(E)>,
}

impl<E> TicketReplicaListener<E> {
    /// The listener over this replica store.
    pub fn new(tickets: Arc<dyn TicketReplicaStore>) -> Self {
        TicketReplicaListener {
            tickets,
            event: PhantomData,
        }
    }
}

#[async_trait]
impl<E: TicketEvent> Handler for TicketReplicaListener<E> {
    type Event = E;

    async fn handle(&self, event: E, _ctx: &MessageContext<'_>) -> Result<(), HandlerError> {
        replicate(&*self.tickets, event.into_replica()).await
    }
}
