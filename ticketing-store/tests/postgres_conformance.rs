//! The whole store conformance suite against PostgreSQL (`DATABASE_URL`), a schema per case.
#![cfg(feature = "postgres")]

mod support;

use async_trait::async_trait;
use ticketing_core::conformance::store::{StoreFactory, Stores};

struct Postgres;

#[async_trait]
impl StoreFactory for Postgres {
    async fn stores(&self) -> Stores {
        support::stores_of(&support::postgres(16).await)
    }
}

ticketing_core::store_conformance_tests!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    factory = Postgres
);
