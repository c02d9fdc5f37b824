use std::sync::Arc;

use async_trait::async_trait;
use ticketing_core::events::TicketUpdated;
use ticketing_core::store::{TicketReplica, TicketReplicaStore};
use ticketing_core::{HandlerError, Listener, ListenerOptions, MessageContext};

use ticketing_common::service::listener_options;

use super::{QUEUE_GROUP, replicate};

/// `ticket:updated`: find_by_event — Apply copies title, price and version from the event,
/// Duplicate acks, Gap retries soon.
pub struct TicketUpdatedListener {
    /// The replica of tickets.
    pub tickets: Arc<dyn TicketReplicaStore>,
}

#[async_trait]
impl Listener for TicketUpdatedListener {
    type Event = TicketUpdated;

    fn queue_group(&self) -> &str {
        QUEUE_GROUP
    }

    fn options(&self) -> ListenerOptions {
        listener_options()
    }

    async fn on_message(
        &self,
        event: TicketUpdated,
        _ctx: &MessageContext<'_>,
    ) -> Result<(), HandlerError> {
        let replica = TicketReplica {
            id: event.id,
            title: event.title,
            price: event.price,
            version: event.version,
        };
        replicate(&*self.tickets, replica).await
    }
}
