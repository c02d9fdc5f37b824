//! The listeners of the tickets service (queue group `tickets-service`), one file per event.

mod order_cancelled;
mod order_completed;
mod order_created;

pub use order_cancelled::order_cancelled;
pub use order_completed::order_completed;
pub use order_created::order_created;

use ticketing_core::ticketing::events::{OrderCancelledTicket, queue_groups};
use ticketing_core::ticketing::reservation::OrderStatus;
use ticketing_core::ticketing::store::{
    Applicable, OrderReplica, OrderReplicaStore, Ticket, TicketStore,
};
use ticketing_core::{HandlerError, Id, StoreError, Version, store};

use crate::models::announce_updated;

/// The queue group of every listener here.
pub const QUEUE_GROUP: &str = queue_groups::TICKETS_SERVICE;

ticketing_core::events! {
    /// What the tickets service hears of orders: one durable consumer of the three subjects
    /// (`tickets-service`, nats-server 2.10 or later; it starts where the per-subject durables
    /// of before left off), so an order's events come in the order they were stored, and with
    /// `LISTENER_ORDER=key` one at a time per order.
    #[derive(Debug)]
    pub enum OrderEvent {
        /// `order:created`.
        Created(ticketing_core::ticketing::events::OrderCreated),
        /// `order:cancelled`.
        Cancelled(ticketing_core::ticketing::events::OrderCancelled),
        /// `order:completed`.
        Completed(ticketing_core::ticketing::events::OrderCompleted),
    }
}

/// The order events, each to its handler.
pub async fn order_event(
    state: crate::startup::TicketsState,
    event: OrderEvent,
) -> Result<(), HandlerError> {
    match event {
        OrderEvent::Created(e) => order_created(state, e).await,
        OrderEvent::Cancelled(e) => order_cancelled(state, e).await,
        OrderEvent::Completed(e) => order_completed(state, e).await,
    }
}

/// The ticket an order event is about; an unknown ticket is a permanent failure.
async fn ticket_of(
    tickets: &dyn TicketStore,
    order: Id,
    ticket: Id,
) -> Result<Ticket, HandlerError> {
    store::known(tickets.get(ticket).await, || {
        format!("order {order} is for unknown ticket {ticket}")
    })
}

/// A later state of an order (`order:cancelled`, `order:completed`: the order's id, version and
/// ticket), version-checked against the replica: the record to write when it applies, none for
/// a duplicate; a gap waits. The ticket is the one the replica knows, else the event's.
async fn version_checked(
    replicas: &dyn OrderReplicaStore,
    (id, version, ticket): (Id, Version, &OrderCancelledTicket),
    status: OrderStatus,
) -> Result<Option<OrderReplica>, HandlerError> {
    let lookup = replicas.find_by_event(&id, version).await?;
    let Some(Applicable { current, .. }) = lookup.applicable()? else {
        return Ok(None);
    };
    Ok(Some(OrderReplica {
        id,
        ticket_id: current.as_ref().map_or(ticket.id, |o| o.ticket_id),
        status,
        version,
    }))
}

/// Writes `ticket` held by `holder` (none: released) at version + 1 in one unit with the
/// order's record, committing `ticket:updated`.
async fn hold(
    tickets: &dyn TicketStore,
    ticket: Ticket,
    holder: Option<Id>,
    order: &OrderReplica,
) -> Result<Ticket, HandlerError> {
    let held = Ticket {
        order_id: holder,
        ..ticket
    };
    Ok(tickets
        .update_for_order(&held, order, &announce_updated)
        .await?)
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
