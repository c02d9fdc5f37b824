//! The generic suites against a MongoDB-wire server: replicas of a record that is not a ticket
//! in a collection of their own, and a service's own documents written with their pending
//! events in one single-document write. A database per case.
#![cfg(feature = "mongo")]

use std::sync::Arc;

use async_trait::async_trait;
use mongodb::bson::doc;
use ticketing_core::conformance::commit::{CommitFactory, Committer};
use ticketing_core::conformance::replica::{Shipment, ShipmentStores};
use ticketing_core::outbox::Outbox;
use ticketing_core::store::{ReplicaStore, StoreError};
use ticketing_core::{OutgoingMessage, ReplicaStart, Version};
use ticketing_store::mongo::{MongoDatabase, MongoOutbox, error};

async fn database() -> MongoDatabase {
    let uri = ticketing_test_live::mongo_uri();
    let name = ticketing_test_live::fresh_mongo_database("sdk").await;
    MongoDatabase::connect(&uri, &name)
        .await
        .unwrap_or_else(|e| {
            panic!("a MongoDB-wire server must be running (scripts/test starts it): {e}")
        })
}

struct Mongo;

#[async_trait]
impl ShipmentStores for Mongo {
    async fn shipments(&self, start: ReplicaStart) -> Arc<dyn ReplicaStore<Shipment>> {
        Arc::new(database().await.replicas::<Shipment>("shipments", start))
    }
}

ticketing_core::replica_conformance_tests!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    factory = Mongo
);

/// The service's own `parcels` documents, each written with its pending events.
struct Parcels {
    db: MongoDatabase,
    outbox: MongoOutbox,
}

#[async_trait]
impl Committer for Parcels {
    async fn create(&self, id: &str, events: Vec<OutgoingMessage>) -> Result<(), StoreError> {
        self.db
            .insert_announcing("parcels", doc! {"_id": id, "version": 0_i64}, events)
            .await
    }

    async fn update(
        &self,
        id: &str,
        expected: Version,
        events: Vec<OutgoingMessage>,
    ) -> Result<(), StoreError> {
        let after = self
            .db
            .update_announcing(
                "parcels",
                doc! {"_id": id, "version": expected as i64},
                doc! {"$inc": {"version": 1_i64}},
                events,
            )
            .await?;
        match after {
            Some(_) => Ok(()),
            None => Err(StoreError::conflict("parcel", id, expected)),
        }
    }

    async fn version(&self, id: &str) -> Result<Option<Version>, StoreError> {
        let found = self
            .db
            .database()
            .collection::<mongodb::bson::Document>("parcels")
            .find_one(doc! {"_id": id})
            .await
            .map_err(error)?;
        Ok(found
            .and_then(|d| d.get_i64("version").ok())
            .map(|v| v as Version))
    }

    fn outbox(&self) -> Arc<dyn Outbox> {
        Arc::new(self.outbox.clone())
    }
}

#[async_trait]
impl CommitFactory for Mongo {
    async fn committer(&self) -> Arc<dyn Committer> {
        let db = database().await;
        let outbox = db.outbox_for(&["parcels"]).await.expect("outbox");
        Arc::new(Parcels { db, outbox })
    }
}

ticketing_core::commit_conformance_tests!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    factory = Mongo
);

#[tokio::test]
async fn the_documents_hold_no_pending_events_once_read_back() {
    let db = database().await;
    let after = db
        .update_announcing(
            "parcels",
            doc! {"_id": "missing"},
            doc! {"$set": {"x": 1}},
            vec![OutgoingMessage::new("parcel:moved", "{}")],
        )
        .await
        .expect("update");
    assert!(after.is_none(), "nothing matched, nothing written");
    db.insert_announcing(
        "parcels",
        doc! {"_id": "p1", "version": 0_i64},
        vec![OutgoingMessage::new("parcel:moved", "{}")],
    )
    .await
    .expect("insert");
    let after = db
        .update_announcing(
            "parcels",
            doc! {"_id": "p1"},
            doc! {"$inc": {"version": 1_i64}},
            vec![OutgoingMessage::new("parcel:moved", "{}")],
        )
        .await
        .expect("update")
        .expect("matched");
    assert_eq!(after.get_i64("version"), Ok(1));
    assert!(after.get("outbox").is_none(), "{after}");
}
