//! The whole store conformance suite against a MongoDB-wire server (`MONGO_URI`; SecantusDB in
//! CI), a database per case.
#![cfg(feature = "mongo")]

mod support;

use std::sync::Arc;

use async_trait::async_trait;
use ticketing_core::conformance::store::{StoreFactory, Stores};

struct Mongo;

#[async_trait]
impl StoreFactory for Mongo {
    async fn stores(&self) -> Stores {
        let db = support::mongo::isolated_database().await;
        Stores {
            users: Arc::new(db.users()),
            tickets: Arc::new(db.tickets()),
            order_replicas: Arc::new(db.order_replicas()),
            ticket_replicas: Arc::new(db.ticket_replicas()),
            orders: Arc::new(db.orders()),
        }
    }
}

ticketing_core::store_conformance_tests!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    factory = Mongo
);
