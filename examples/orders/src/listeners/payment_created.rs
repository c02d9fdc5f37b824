use std::sync::Arc;

use async_trait::async_trait;
use ticketing_core::ticketing::events::PaymentCreated;
use ticketing_core::ticketing::reservation::OrderStatus;
use ticketing_core::ticketing::store::OrderStore;
use ticketing_core::{Handler, HandlerError, MessageContext, StoreError};

use crate::models::announce_completed;

/// `payment:created`: marks the order `complete` (version + 1), committing `order:completed`
/// with the change. A repeat finds it complete and changes nothing. An order cancelled first
/// (the payment lost the race with its expiry) stays cancelled: the payments service refunds
/// when it learns of the cancellation.
pub struct PaymentCreatedListener {
    /// Orders.
    pub orders: Arc<dyn OrderStore>,
}

#[async_trait]
impl Handler for PaymentCreatedListener {
    type Event = PaymentCreated;

    async fn handle(
        &self,
        event: PaymentCreated,
        _ctx: &MessageContext<'_>,
    ) -> Result<(), HandlerError> {
        let order = match self.orders.get(event.order_id).await {
            Ok(order) => order,
            Err(StoreError::NotFound { .. }) => {
                return Err(HandlerError::permanent(format!(
                    "payment {} is for unknown order {}",
                    event.id, event.order_id
                )));
            }
            Err(e) => return Err(e.into()),
        };
        match order.status {
            OrderStatus::Complete => return Ok(()),
            OrderStatus::Cancelled => {
                tracing::warn!(order = %order.id, payment = %event.id, "payment for a cancelled order; the payments service refunds it");
                return Ok(());
            }
            OrderStatus::Created | OrderStatus::AwaitingPayment => {}
        }
        let completed = self
            .orders
            .set_status_announcing(
                order.id,
                order.version,
                OrderStatus::Complete,
                &announce_completed,
            )
            .await?;
        tracing::info!(order = %completed.id, payment = %event.id, "order paid for");
        Ok(())
    }
}
