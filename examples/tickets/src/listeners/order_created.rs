use std::sync::Arc;

use async_trait::async_trait;
use ticketing_core::ticketing::events::OrderCreated;
use ticketing_core::ticketing::reservation::OrderStatus;
use ticketing_core::ticketing::store::{OrderReplica, OrderReplicaStore, Ticket, TicketStore};
use ticketing_core::{Handler, HandlerError, MessageContext};

use super::{record, ticket_of};
use crate::models::announce_updated;

/// `order:created`: version-checked against the order replica; in one unit, marks the ticket
/// reserved by the order (version + 1), commits `ticket:updated` with `orderId` to the outbox
/// and records the order; acks.
pub struct OrderCreatedListener {
    /// Tickets.
    pub tickets: Arc<dyn TicketStore>,
    /// The replica of orders.
    pub orders: Arc<dyn OrderReplicaStore>,
}

#[async_trait]
impl Handler for OrderCreatedListener {
    type Event = OrderCreated;

    async fn handle(
        &self,
        event: OrderCreated,
        _ctx: &MessageContext<'_>,
    ) -> Result<(), HandlerError> {
        let lookup = self.orders.find_by_event(&event.id, event.version).await?;
        if lookup.applicable()?.is_none() {
            return Ok(());
        }
        let ticket = ticket_of(&*self.tickets, event.id, event.ticket.id).await?;
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
            Some(holder) if holder == event.id => {
                record(&*self.orders, &order).await?;
                return Ok(());
            }
            Some(holder) => {
                // Orders reserve atomically, so another holder's cancellation is on its way.
                let holder_cancelled = matches!(
                    self.orders.get(&holder).await,
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
        let reserved = self
            .tickets
            .update_for_order(
                &Ticket {
                    order_id: Some(event.id),
                    ..reserved
                },
                &order,
                &announce_updated,
            )
            .await?;
        tracing::info!(ticket = %reserved.id, order = %event.id, version = reserved.version, "ticket reserved");
        Ok(())
    }
}
