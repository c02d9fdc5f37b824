use ticketing_core::ticketing::events::TicketCreated;
use ticketing_core::ticketing::store::TicketReplica;

use super::{TicketEvent, TicketReplicaListener};

/// `ticket:created`: stores a replica with the same id and version; a redelivery is acked.
pub type TicketCreatedListener = TicketReplicaListener<TicketCreated>;

impl TicketEvent for TicketCreated {
    fn into_replica(self) -> TicketReplica {
        TicketReplica {
            id: self.id,
            title: self.title,
            price: self.price,
            version: self.version,
        }
    }
}
