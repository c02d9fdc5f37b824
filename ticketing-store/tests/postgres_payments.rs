//! The payment store conformance suite against PostgreSQL (`DATABASE_URL`), a schema per case.
#![cfg(feature = "postgres")]

mod support;

use std::sync::Arc;

use async_trait::async_trait;
use ticketing_core::conformance::payments::{PaymentStoreFactory, PaymentStores};
use ticketing_store::Database;

struct Postgres;

#[async_trait]
impl PaymentStoreFactory for Postgres {
    async fn payment_stores(&self) -> PaymentStores {
        let Database::Postgres(db) = support::postgres(16).await else {
            unreachable!("opened PostgreSQL settings");
        };
        PaymentStores {
            payments: Arc::new(db.payments()),
            payable_orders: Arc::new(db.payable_orders()),
            outbox: Arc::new(db.outbox()),
        }
    }
}

ticketing_core::payment_store_conformance_tests!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    factory = Postgres
);
