//! The payment store conformance suite against a MongoDB-wire server (`MONGO_URI`), a database per case.
#![cfg(feature = "mongo")]

mod support;

use async_trait::async_trait;
use ticketing_core::conformance::payments::{PaymentStoreFactory, PaymentStores};

struct Mongo;

#[async_trait]
impl PaymentStoreFactory for Mongo {
    async fn payment_stores(&self) -> PaymentStores {
        let db = support::mongo().await;
        PaymentStores {
            payments: db.payments(),
            payable_orders: db.payable_orders(),
            outbox: db.outbox(),
        }
    }
}

ticketing_core::payment_store_conformance_tests!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    factory = Mongo
);
