use std::sync::Arc;

use async_trait::async_trait;
use ticketing_core::events::{OrderCreated, TicketUpdated};
use ticketing_core::reservation::OrderStatus;
use ticketing_core::store::{OrderReplica, OrderReplicaStore, Ticket, TicketStore};
use ticketing_core::version::EventDisposition;
use ticketing_core::{HandlerError, Listener, ListenerOptions, MessageContext, Publisher};

use ticketing_common::service::listener_options;

use super::{QUEUE_GROUP, record, ticket_of};
use crate::models::updated_event;

/// `order:created`: version-checked against the order replica; marks the ticket reserved by the
/// order (version + 1), publishes `ticket:updated` with `orderId`, records the order, acks.
pub struct OrderCreatedListener {
    /// Tickets.
    pub tickets: Arc<dyn TicketStore>,
    /// The replica of orders.
    pub orders: Arc<dyn OrderReplicaStore>,
    /// Publishes the reserved ticket.
    pub updated: Publisher<TicketUpdated>,
}

#[async_trait]
impl Listener for OrderCreatedListener {
    type Event = OrderCreated;

    fn queue_group(&self) -> &str {
        QUEUE_GROUP
    }

    fn options(&self) -> ListenerOptions {
        listener_options()
    }

    async fn on_message(
        &self,
        event: OrderCreated,
        _ctx: &MessageContext<'_>,
    ) -> Result<(), HandlerError> {
        let lookup = self.orders.find_by_event(event.id, event.version).await?;
        match lookup.disposition {
            EventDisposition::Apply => {}
            EventDisposition::Duplicate => return Ok(()),
            EventDisposition::Gap => return Err(lookup.gap_error()),
        }
        let ticket = ticket_of(&*self.tickets, event.id, event.ticket.id).await?;
        let reserved = match ticket.order_id {
            // Reserved by this very order on an earlier attempt: announce it again below, in
            // case that attempt failed to publish.
            Some(holder) if holder == event.id => ticket,
            Some(holder) => {
                // Orders reserve atomically, so another holder's cancellation is on its way.
                let holder_cancelled = matches!(
                    self.orders.get(holder).await,
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
                self.tickets
                    .update(&Ticket {
                        order_id: Some(event.id),
                        ..ticket
                    })
                    .await?
            }
            None => {
                self.tickets
                    .update(&Ticket {
                        order_id: Some(event.id),
                        ..ticket
                    })
                    .await?
            }
        };
        self.updated.publish(&updated_event(&reserved)).await?;
        record(
            &*self.orders,
            &OrderReplica {
                id: event.id,
                ticket_id: event.ticket.id,
                status: event.status,
                version: event.version,
            },
        )
        .await?;
        tracing::info!(ticket = %reserved.id, order = %event.id, version = reserved.version, "ticket reserved");
        Ok(())
    }
}
