use std::sync::Arc;

use async_trait::async_trait;
use ticketing_core::ticketing::events::OrderCancelled;
use ticketing_core::ticketing::reservation::{OrderStatus, releases_ticket};
use ticketing_core::ticketing::store::{
    Applicable, OrderReplica, OrderReplicaStore, Ticket, TicketStore,
};
use ticketing_core::{Handler, HandlerError, MessageContext};

use super::{record, ticket_of};
use crate::models::announce_updated;

/// `order:cancelled`: version-checked against the order replica (a cancellation that overtakes
/// its `order:created` waits); if that order holds the ticket, releases it (version + 1) and
/// commits `ticket:updated` without `orderId` in the same unit as the order's record;
/// otherwise only records the order. Acks.
pub struct OrderCancelledListener {
    /// Tickets.
    pub tickets: Arc<dyn TicketStore>,
    /// The replica of orders.
    pub orders: Arc<dyn OrderReplicaStore>,
}

#[async_trait]
impl Handler for OrderCancelledListener {
    type Event = OrderCancelled;

    async fn handle(
        &self,
        event: OrderCancelled,
        _ctx: &MessageContext<'_>,
    ) -> Result<(), HandlerError> {
        let lookup = self.orders.find_by_event(&event.id, event.version).await?;
        let Some(Applicable { current, .. }) = lookup.applicable()? else {
            return Ok(());
        };
        let ticket = ticket_of(&*self.tickets, event.id, event.ticket.id).await?;
        let order = OrderReplica {
            id: event.id,
            ticket_id: current.as_ref().map_or(event.ticket.id, |o| o.ticket_id),
            status: OrderStatus::Cancelled,
            version: event.version,
        };
        if releases_ticket(ticket.order_id, event.id) {
            let released = self
                .tickets
                .update_for_order(
                    &Ticket {
                        order_id: None,
                        ..ticket
                    },
                    &order,
                    &announce_updated,
                )
                .await?;
            tracing::info!(ticket = %released.id, order = %event.id, version = released.version, "ticket released");
            Ok(())
        } else {
            record(&*self.orders, &order).await
        }
    }
}
