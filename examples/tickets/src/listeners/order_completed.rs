use ticketing_core::HandlerError;
use ticketing_core::ticketing::events::OrderCompleted;
use ticketing_core::ticketing::reservation::OrderStatus;

use super::{record, version_checked};
use crate::startup::TicketsState;

/// `order:completed`: version-checked against the order replica (a completion that overtakes
/// its `order:created` waits); records the order as complete. The ticket stays held by it for
/// good: nothing about the ticket changes, so no event.
pub async fn order_completed(
    state: TicketsState,
    event: OrderCompleted,
) -> Result<(), HandlerError> {
    let orders = &*state.order_replicas;
    if let Some(order) = version_checked(
        orders,
        (event.id, event.version, &event.ticket),
        OrderStatus::Complete,
    )
    .await?
    {
        record(orders, &order).await?;
        tracing::info!(order = %event.id, version = event.version, "order recorded as complete");
    }
    Ok(())
}
