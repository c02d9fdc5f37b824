use ticketing_core::HandlerError;
use ticketing_core::store::known;
use ticketing_core::ticketing::events::ExpirationComplete;
use ticketing_core::ticketing::reservation::{CancelOutcome, OrderStatus};

use crate::models::change_status;
use crate::startup::OrdersState;

/// `expiration:complete`: cancels the order unless it is complete or already cancelled
/// (version + 1), committing `order:cancelled` with the change. A repeat finds it cancelled
/// and changes nothing.
pub async fn expiration_complete(
    state: OrdersState,
    event: ExpirationComplete,
) -> Result<(), HandlerError> {
    let id = event.order_id;
    let order = known(state.orders.get(id).await, || {
        format!("order {id} does not exist")
    })?;
    match order.status.cancel() {
        Ok(CancelOutcome::Cancel) => {}
        Ok(CancelOutcome::AlreadyCancelled) => return Ok(()),
        // Paid for: it does not expire.
        Err(_) => return Ok(()),
    }
    let cancelled = change_status(&*state.orders, &order, OrderStatus::Cancelled).await?;
    tracing::info!(order = %cancelled.id, "order expired");
    Ok(())
}
