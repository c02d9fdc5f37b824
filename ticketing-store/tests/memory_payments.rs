//! The payment store conformance suite against the in-memory stores.

use async_trait::async_trait;
use ticketing_core::conformance::payments::{PaymentStoreFactory, PaymentStores};
use ticketing_store::StoreSettings;

mod support;

struct Memory;

#[async_trait]
impl PaymentStoreFactory for Memory {
    async fn payment_stores(&self) -> PaymentStores {
        let db = support::open(StoreSettings::Memory).await;
        PaymentStores {
            payments: db.payments(),
            payable_orders: db.payable_orders(),
            outbox: db.outbox(),
        }
    }
}

ticketing_core::payment_store_conformance_tests!(
    #[tokio::test]
    factory = Memory
);
