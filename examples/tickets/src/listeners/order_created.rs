use ticketing_core::HandlerError;
use ticketing_core::ticketing::events::OrderCreated;
use ticketing_core::ticketing::reservation::OrderStatus;
use ticketing_core::ticketing::store::OrderReplica;

use super::{hold, record, ticket_of};
use crate::startup::TicketsState;

/// `order:created`: version-checked against the order replica; in one unit, marks the ticket
/// reserved by the order (version + 1), commits `ticket:updated` with `orderId` to the outbox
/// and records the order; acks.
pub async fn order_created(state: TicketsState, event: OrderCreated) -> Result<(), HandlerError> {
    let orders = &*state.order_replicas;
    let lookup = orders.find_by_event(&event.id, event.version).await?;
    if lookup.applicable()?.is_none() {
        return Ok(());
    }
    let ticket = ticket_of(&*state.tickets, event.id, event.ticket.id).await?;
    let order = OrderReplica {
        id: event.id,
        ticket_id: event.ticket.id,
        status: event.status,
        version: event.version,
    };
    let reserved = match ticket.order_id {
        // Reserved by this very order on an earlier attempt, whose replica write did not
        // happen (a crash between the two writes on MongoDB): its event is in the outbox
        // already; record the order.
        Some(holder) if holder == event.id => return record(orders, &order).await,
        Some(holder) => {
            // Orders reserve atomically, so another holder's cancellation is on its way.
            let holder_cancelled = matches!(
                orders.get(&holder).await,
                Ok(OrderReplica {
                    status: OrderStatus::Cancelled,
                    ..
                })
            );
            if !holder_cancelled {
                return Err(HandlerError::wait(format!(
                    "ticket {} is still held by order {holder}; waiting for its cancellation",
                    ticket.id
                )));
            }
            ticket
        }
        None => ticket,
    };
    let reserved = hold(&*state.tickets, reserved, Some(event.id), &order).await?;
    tracing::info!(ticket = %reserved.id, order = %event.id, version = reserved.version, "ticket reserved");
    Ok(())
}
