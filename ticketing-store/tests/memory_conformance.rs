//! The whole store conformance suite against the in-memory stores.

use std::sync::Arc;

use async_trait::async_trait;
use ticketing_core::conformance::store::{StoreFactory, Stores};
use ticketing_store::memory::{
    InMemoryOrderReplicaStore, InMemoryOrderStore, InMemoryTicketReplicaStore, InMemoryTicketStore,
    InMemoryUserStore,
};

struct Memory;

#[async_trait]
impl StoreFactory for Memory {
    async fn stores(&self) -> Stores {
        let ticket_replicas = InMemoryTicketReplicaStore::new();
        Stores {
            users: Arc::new(InMemoryUserStore::new()),
            tickets: Arc::new(InMemoryTicketStore::new()),
            order_replicas: Arc::new(InMemoryOrderReplicaStore::new()),
            orders: Arc::new(InMemoryOrderStore::new(&ticket_replicas)),
            ticket_replicas: Arc::new(ticket_replicas),
        }
    }
}

ticketing_core::store_conformance_tests!(
    #[tokio::test]
    factory = Memory
);
