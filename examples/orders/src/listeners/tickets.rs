//! The replica of tickets, kept from `ticket:created` and `ticket:updated` on the versioned
//! contract: Apply writes (copying the version from the event), Duplicate acks, Gap retries
//! soon.

use ticketing_core::ticketing::Price;
use ticketing_core::ticketing::events::{TicketCreated, TicketUpdated};
use ticketing_core::ticketing::store::{TicketReplica, TicketReplicaStore};
use ticketing_core::{HandlerError, Id, Version, store};

use crate::startup::OrdersState;

/// `ticket:created`: stores a replica with the same id and version; a redelivery is acked.
pub async fn ticket_created(state: OrdersState, e: TicketCreated) -> Result<(), HandlerError> {
    replicate(&*state.tickets, e.id, e.title, e.price, e.version).await
}

/// `ticket:updated`: find_by_event — Apply copies title, price and version from the event,
/// Duplicate acks, Gap retries soon.
pub async fn ticket_updated(state: OrdersState, e: TicketUpdated) -> Result<(), HandlerError> {
    replicate(&*state.tickets, e.id, e.title, e.price, e.version).await
}

ticketing_core::events! {
    /// The ticket events: one durable consumer of both subjects (`orders-service`, nats-server
    /// 2.10 or later; it starts where the per-subject durables of before left off), so a
    /// ticket's update rarely overtakes its creation, and with `LISTENER_ORDER=key` never.
    #[derive(Debug)]
    pub enum TicketEvent {
        /// `ticket:created`.
        Created(TicketCreated),
        /// `ticket:updated`.
        Updated(TicketUpdated),
    }
}

/// The ticket events, each to its handler.
pub async fn ticket_event(state: OrdersState, event: TicketEvent) -> Result<(), HandlerError> {
    match event {
        TicketEvent::Created(e) => ticket_created(state, e).await,
        TicketEvent::Updated(e) => ticket_updated(state, e).await,
    }
}

/// Applies a ticket event's fields to the replica on the versioned contract.
async fn replicate(
    replicas: &dyn TicketReplicaStore,
    id: Id,
    title: String,
    price: Price,
    version: Version,
) -> Result<(), HandlerError> {
    let ticket = TicketReplica {
        id,
        title,
        price,
        version,
    };
    // The event carries the whole replica: written first, looked up only when refused.
    if store::replicate_record(replicas, ticket).await?.is_some() {
        tracing::info!(ticket = %id, version, "ticket replicated");
    }
    Ok(())
}
