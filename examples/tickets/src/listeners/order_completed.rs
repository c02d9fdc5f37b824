use std::sync::Arc;

use async_trait::async_trait;
use ticketing_core::ticketing::events::OrderCompleted;
use ticketing_core::ticketing::reservation::OrderStatus;
use ticketing_core::ticketing::store::{Applicable, OrderReplica, OrderReplicaStore};
use ticketing_core::{Handler, HandlerError, MessageContext};

use super::record;

/// `order:completed`: version-checked against the order replica (a completion that overtakes
/// its `order:created` waits); records the order as complete. The ticket stays held by it for
/// good: nothing about the ticket changes, so no event.
pub struct OrderCompletedListener {
    /// The replica of orders.
    pub orders: Arc<dyn OrderReplicaStore>,
}

#[async_trait]
impl Handler for OrderCompletedListener {
    type Event = OrderCompleted;

    async fn handle(
        &self,
        event: OrderCompleted,
        _ctx: &MessageContext<'_>,
    ) -> Result<(), HandlerError> {
        let lookup = self.orders.find_by_event(&event.id, event.version).await?;
        let Some(Applicable { current, .. }) = lookup.applicable()? else {
            return Ok(());
        };
        let order = OrderReplica {
            id: event.id,
            ticket_id: current.as_ref().map_or(event.ticket.id, |o| o.ticket_id),
            status: OrderStatus::Complete,
            version: event.version,
        };
        record(&*self.orders, &order).await?;
        tracing::info!(order = %event.id, version = event.version, "order recorded as complete");
        Ok(())
    }
}
