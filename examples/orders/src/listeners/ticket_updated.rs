use ticketing_core::ticketing::events::TicketUpdated;
use ticketing_core::ticketing::store::TicketReplica;

use super::{TicketEvent, TicketReplicaListener};

/// `ticket:updated`: find_by_event — Apply copies title, price and version from the event,
/// Duplicate acks, Gap retries soon.
pub type TicketUpdatedListener = TicketReplicaListener<TicketUpdated>;

impl TicketEvent for TicketUpdated {
    fn into_replica(self) -> TicketReplica {
        TicketReplica {
            id: self.id,
            title: self.title,
            price: self.price,
            version: self.version,
        }
    }
}
