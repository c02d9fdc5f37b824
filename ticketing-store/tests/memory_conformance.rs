//! The whole store conformance suite against the in-memory stores.

mod support;

use async_trait::async_trait;
use ticketing_core::conformance::store::{StoreFactory, Stores};
use ticketing_store::StoreSettings;

struct Memory;

#[async_trait]
impl StoreFactory for Memory {
    async fn stores(&self) -> Stores {
        support::stores_of(&support::open(StoreSettings::Memory).await)
    }
}

ticketing_core::store_conformance_tests!(
    #[tokio::test]
    factory = Memory
);
