//! The whole store conformance suite against a MongoDB-wire server (`MONGO_URI`; SecantusDB in
//! CI), a database per case.
#![cfg(feature = "mongo")]

mod support;

use async_trait::async_trait;
use ticketing_core::conformance::store::{StoreFactory, Stores};

struct Mongo;

#[async_trait]
impl StoreFactory for Mongo {
    async fn stores(&self) -> Stores {
        support::stores_of(&support::mongo().await)
    }
}

ticketing_core::store_conformance_tests!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    factory = Mongo
);
