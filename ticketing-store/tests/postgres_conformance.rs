//! The whole store conformance suite against PostgreSQL (`DATABASE_URL`), a schema per case.
#![cfg(feature = "postgres")]

mod support;

use std::sync::Arc;

use async_trait::async_trait;
use ticketing_core::conformance::store::{StoreFactory, Stores};

struct Postgres;

#[async_trait]
impl StoreFactory for Postgres {
    async fn stores(&self) -> Stores {
        let db = support::pg::isolated_database(16).await;
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
    factory = Postgres
);
