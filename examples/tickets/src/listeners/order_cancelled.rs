use ticketing_core::HandlerError;
use ticketing_core::ticketing::events::OrderCancelled;
use ticketing_core::ticketing::reservation::{OrderStatus, releases_ticket};

use super::{hold, record, ticket_of, version_checked};
use crate::startup::TicketsState;

/// `order:cancelled`: version-checked against the order replica (a cancellation that overtakes
/// its `order:created` waits); if that order holds the ticket, releases it (version + 1) and
/// commits `ticket:updated` without `orderId` in the same unit as the order's record;
/// otherwise only records the order. Acks.
pub async fn order_cancelled(
    state: TicketsState,
    event: OrderCancelled,
) -> Result<(), HandlerError> {
    let orders = &*state.order_replicas;
    let Some(order) = version_checked(
        orders,
        (event.id, event.version, &event.ticket),
        OrderStatus::Cancelled,
    )
    .await?
    else {
        return Ok(());
    };
    let ticket = ticket_of(&*state.tickets, event.id, event.ticket.id).await?;
    if !releases_ticket(ticket.order_id, event.id) {
        return record(orders, &order).await;
    }
    let released = hold(&*state.tickets, ticket, None, &order).await?;
    tracing::info!(ticket = %released.id, order = %event.id, version = released.version, "ticket released");
    Ok(())
}
