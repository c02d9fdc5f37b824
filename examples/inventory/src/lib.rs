//! An example service of another domain on the Ticketing SDK, built only on its generic API
//! (`ticketing-core` and `ticketing-store` without their `ticketing` feature):
//!
//! - the **warehouse** owns stock items ([`stock`]): each change is committed with its event
//!   into the outbox in one unit, on memory, PostgreSQL (the service's own transaction) or
//!   MongoDB (one document), and a relay publishes the events;
//! - the **storefront** keeps a replica of the stock ([`storefront`]) on the versioned
//!   contract: duplicates are acknowledged, an event that overtakes an earlier one waits;
//! - the **alerts** service hears only later events and starts its replica mid-stream
//!   ([`alerts`]).
//!
//! In this example the three run in one process over one database; each would be a service
//! of its own with its own database, and they share nothing but the bus.

pub mod alerts;
pub mod events;
pub mod stock;
pub mod storefront;

use std::sync::Arc;

use ticketing_core::listener::Router;
use ticketing_core::outbox::{RelayHandle, RelayOptions, spawn_relay};
use ticketing_core::store::ReplicaStore;
use ticketing_core::{Bus, BusError, ListenerHandle, ReplicaStart, StoreError, spawn_listener};
use ticketing_store::Database;
use tokio_util::sync::CancellationToken;

use alerts::{WatchAdjusted, Watched};
use stock::{MemoryStock, MongoStock, PgStock, StockStore};
use storefront::Listing;

/// The three parts' data on one database.
#[derive(Clone)]
pub struct Inventory {
    /// The warehouse's stock, with its outbox.
    pub stock: Arc<dyn StockStore>,
    /// The storefront's replica of the stock.
    pub listings: Arc<dyn ReplicaStore<Listing>>,
    /// The alerts service's replica, started mid-stream.
    pub watched: Arc<dyn ReplicaStore<Watched>>,
}

impl Inventory {
    /// Opens the stock (running the warehouse's own migrations on PostgreSQL, its index on
    /// MongoDB) and the two replica stores on `db`.
    pub async fn open(db: &Database) -> Result<Self, StoreError> {
        let stock: Arc<dyn StockStore> = match db {
            Database::Memory(memory) => Arc::new(MemoryStock::new(memory.outbox())),
            Database::Postgres(pg) => Arc::new(PgStock::new(pg.clone()).await?),
            Database::Mongo(mongo) => Arc::new(MongoStock::new(mongo.clone()).await?),
            other => {
                return Err(StoreError::backend(
                    "inventory",
                    format!("no stock store for {:?}", other.backend()),
                ));
            }
        };
        Ok(Inventory {
            stock,
            listings: db
                .replicas::<Listing>("listings", ReplicaStart::FromFirst)
                .await?,
            watched: db
                .replicas::<Watched>("watched_items", ReplicaStart::FirstSeen)
                .await?,
        })
    }

    /// The warehouse's relay: publishes what the stock committed, until `token` is cancelled.
    pub fn start_warehouse(&self, bus: Arc<dyn Bus>, token: CancellationToken) -> RelayHandle {
        let options = RelayOptions {
            name: "warehouse",
            ..RelayOptions::default()
        };
        spawn_relay(self.stock.outbox(), bus, "warehouse-relay", options, token)
    }

    /// The storefront's listeners: one router, its queue group given once, a handler per
    /// stock event; they stop when `token` is cancelled.
    pub async fn start_storefront(
        &self,
        bus: &Arc<dyn Bus>,
        token: &CancellationToken,
    ) -> Result<Vec<ListenerHandle>, BusError> {
        Router::new(storefront::QUEUE_GROUP)
            .on(self.listings.clone(), storefront::received)
            .on(self.listings.clone(), storefront::adjusted)
            .spawn(bus, token)
            .await
    }

    /// The alerts service's listener.
    pub async fn start_alerts(&self, bus: &Arc<dyn Bus>) -> Result<ListenerHandle, BusError> {
        spawn_listener(bus, WatchAdjusted(self.watched.clone())).await
    }
}
