use std::sync::Arc;

use async_trait::async_trait;
use ticketing_core::ticketing::events::ExpirationComplete;
use ticketing_core::ticketing::reservation::{CancelOutcome, OrderStatus};
use ticketing_core::ticketing::store::OrderStore;
use ticketing_core::{Handler, HandlerError, MessageContext, StoreError};

use crate::models::announce_cancelled;

/// `expiration:complete`: cancels the order unless it is complete or already cancelled
/// (version + 1), committing `order:cancelled` with the change. A repeat finds it cancelled
/// and changes nothing.
pub struct ExpirationCompleteListener {
    /// Orders.
    pub orders: Arc<dyn OrderStore>,
}

#[async_trait]
impl Handler for ExpirationCompleteListener {
    type Event = ExpirationComplete;

    async fn handle(
        &self,
        event: ExpirationComplete,
        _ctx: &MessageContext<'_>,
    ) -> Result<(), HandlerError> {
        let order = match self.orders.get(event.order_id).await {
            Ok(order) => order,
            Err(StoreError::NotFound { .. }) => {
                return Err(HandlerError::permanent(format!(
                    "order {} does not exist",
                    event.order_id
                )));
            }
            Err(e) => return Err(e.into()),
        };
        match order.status.cancel() {
            Ok(CancelOutcome::Cancel) => {}
            Ok(CancelOutcome::AlreadyCancelled) => return Ok(()),
            // Paid for: it does not expire.
            Err(_) => return Ok(()),
        }
        let cancelled = self
            .orders
            .set_status_announcing(
                order.id,
                order.version,
                OrderStatus::Cancelled,
                &announce_cancelled,
            )
            .await?;
        tracing::info!(order = %cancelled.id, "order expired");
        Ok(())
    }
}
