use ticketing_core::HandlerError;
use ticketing_core::store::known;
use ticketing_core::ticketing::events::PaymentCreated;
use ticketing_core::ticketing::reservation::OrderStatus;

use crate::models::change_status;
use crate::startup::OrdersState;

/// `payment:created`: marks the order `complete` (version + 1), committing `order:completed`
/// with the change. A repeat finds it complete and changes nothing. An order cancelled first
/// (the payment lost the race with its expiry) stays cancelled: the payments service refunds
/// when it learns of the cancellation.
pub async fn payment_created(
    state: OrdersState,
    event: PaymentCreated,
) -> Result<(), HandlerError> {
    let (payment, id) = (event.id, event.order_id);
    let order = known(state.orders.get(id).await, || {
        format!("payment {payment} is for unknown order {id}")
    })?;
    match order.status {
        OrderStatus::Complete => return Ok(()),
        OrderStatus::Cancelled => {
            tracing::warn!(order = %order.id, %payment, "payment for a cancelled order; the payments service refunds it");
            return Ok(());
        }
        OrderStatus::Created | OrderStatus::AwaitingPayment => {}
    }
    let completed = change_status(&*state.orders, &order, OrderStatus::Complete).await?;
    tracing::info!(order = %completed.id, %payment, "order paid for");
    Ok(())
}
