//! The generic suites against the in-memory backend: replicas of a record that is not a
//! ticket, and a service's own records committing with their events under its own lock.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use ticketing_core::conformance::commit::{CommitFactory, Committer};
use ticketing_core::conformance::replica::{Shipment, ShipmentStores};
use ticketing_core::outbox::Outbox;
use ticketing_core::store::{ReplicaStore, StoreError};
use ticketing_core::{OutgoingMessage, ReplicaStart, Version};
use ticketing_store::InMemoryDatabase;
use ticketing_store::memory::InMemoryOutbox;

struct Memory;

#[async_trait]
impl ShipmentStores for Memory {
    async fn shipments(&self, start: ReplicaStart) -> Arc<dyn ReplicaStore<Shipment>> {
        let db = InMemoryDatabase::new();
        Arc::new(
            db.replicas::<Shipment>("shipments", start)
                .expect("replicas"),
        )
    }
}

ticketing_core::replica_conformance_tests!(
    #[tokio::test]
    factory = Memory
);

/// Parcels kept by the service in a map of its own; each change appends its events to the
/// outbox while it holds the map's lock.
struct Parcels {
    versions: Mutex<HashMap<String, Version>>,
    outbox: InMemoryOutbox,
}

#[async_trait]
impl Committer for Parcels {
    async fn create(&self, id: &str, events: Vec<OutgoingMessage>) -> Result<(), StoreError> {
        let mut versions = self.versions.lock().expect("lock");
        if versions.contains_key(id) {
            return Err(StoreError::AlreadyExists {
                entity: "parcel",
                key: id.to_owned(),
            });
        }
        versions.insert(id.to_owned(), 0);
        self.outbox.append(&format!("parcel:{id}"), events);
        Ok(())
    }

    async fn update(
        &self,
        id: &str,
        expected: Version,
        events: Vec<OutgoingMessage>,
    ) -> Result<(), StoreError> {
        let mut versions = self.versions.lock().expect("lock");
        match versions.get_mut(id) {
            Some(version) if *version == expected => *version += 1,
            _ => return Err(StoreError::conflict("parcel", id, expected)),
        }
        self.outbox.append(&format!("parcel:{id}"), events);
        Ok(())
    }

    async fn version(&self, id: &str) -> Result<Option<Version>, StoreError> {
        Ok(self.versions.lock().expect("lock").get(id).copied())
    }

    fn outbox(&self) -> Arc<dyn Outbox> {
        Arc::new(self.outbox.clone())
    }
}

#[async_trait]
impl CommitFactory for Memory {
    async fn committer(&self) -> Arc<dyn Committer> {
        Arc::new(Parcels {
            versions: Mutex::default(),
            outbox: InMemoryDatabase::new().outbox(),
        })
    }
}

ticketing_core::commit_conformance_tests!(
    #[tokio::test]
    factory = Memory
);

#[test]
fn a_replica_name_holds_one_record_type() {
    let db = InMemoryDatabase::new();
    db.replicas::<Shipment>("things", ReplicaStart::FromFirst)
        .expect("first");
    let other = db.replicas::<ticketing_core::ticketing::store::TicketReplica>(
        "things",
        ReplicaStart::FromFirst,
    );
    assert!(other.is_err());
}
