//! The payment store conformance suite against PostgreSQL (`DATABASE_URL`), a schema per case.
#![cfg(feature = "postgres")]

mod support;

use async_trait::async_trait;
use ticketing_core::conformance::payments::{PaymentStoreFactory, PaymentStores};

struct Postgres;

#[async_trait]
impl PaymentStoreFactory for Postgres {
    async fn payment_stores(&self) -> PaymentStores {
        let db = support::postgres(16).await;
        PaymentStores {
            payments: db.payments(),
            payable_orders: db.payable_orders(),
            outbox: db.outbox(),
        }
    }
}

ticketing_core::payment_store_conformance_tests!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    factory = Postgres
);
