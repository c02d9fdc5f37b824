//! The payment store conformance suite against the in-memory stores.

use std::sync::Arc;

use async_trait::async_trait;
use ticketing_core::conformance::payments::{PaymentStoreFactory, PaymentStores};
use ticketing_store::memory::InMemoryDatabase;

struct Memory;

#[async_trait]
impl PaymentStoreFactory for Memory {
    async fn payment_stores(&self) -> PaymentStores {
        let database = InMemoryDatabase::new();
        PaymentStores {
            payments: Arc::new(database.payments()),
            payable_orders: Arc::new(database.payable_orders()),
            outbox: Arc::new(database.outbox()),
        }
    }
}

ticketing_core::payment_store_conformance_tests!(
    #[tokio::test]
    factory = Memory
);
