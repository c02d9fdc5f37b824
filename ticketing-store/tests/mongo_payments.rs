//! The payment store conformance suite against a MongoDB-wire server (`MONGO_URI`), a database per case.
#![cfg(feature = "mongo")]

mod support;

use std::sync::Arc;

use async_trait::async_trait;
use ticketing_core::conformance::payments::{PaymentStoreFactory, PaymentStores};
use ticketing_store::Database;

struct Mongo;

#[async_trait]
impl PaymentStoreFactory for Mongo {
    async fn payment_stores(&self) -> PaymentStores {
        let Database::Mongo(db) = support::mongo().await else {
            unreachable!("opened MongoDB settings");
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
    factory = Mongo
);
