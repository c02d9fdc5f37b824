//! Store backends for [`ticketing_core::store`]: in-memory, PostgreSQL and MongoDB — replica
//! stores of any record type, and a transactional outbox that joins your own transaction.
//!
//! # Feature flags
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | (always) | | [`memory`]: `InMemoryReplicaStore<R>`, `InMemoryOutbox` |
//! | `postgres` | | `postgres`: `PgReplicaStore<R>`, `append` into the outbox inside your `sqlx::Transaction`, `PgOutbox` (sqlx; the SDK's migrations embedded, run by `connect`) |
//! | `mongo` | | `mongo`: `MongoReplicaStore<R>`, `insert_announcing`/`update_announcing` of your documents with their events, `MongoOutbox` (the official driver) |
//! | `ticketing` | on | the ticketing system's stores on every backend: `InMemoryTicketStore`, `PgOrderStore`, `MongoPaymentStore`, ... with their tables and indexes |
//! | `all-backends` | | `postgres` and `mongo` |
//!
//! Every backend passes the replica and outbox conformance suites of `ticketing-core` (and,
//! with `ticketing`, its store and payment suites).
//!
//! # Choosing a backend at run time
//!
//! [`StoreSettings`] (serde-deserializable; [`StoreSettings::choose`] for environment-style
//! values) opens a [`Database`], which hands out the outbox and `Arc<dyn ReplicaStore<R>>`
//! (and, with `ticketing`, one `Arc<dyn …Store>` per role) whatever the backend: services never
//! name one.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), ticketing_core::StoreError> {
//! use serde::{Deserialize, Serialize};
//! use ticketing_core::store::Replica;
//! use ticketing_core::ReplicaStart;
//! use ticketing_store::StoreSettings;
//!
//! #[derive(Debug, Clone, Serialize, Deserialize)]
//! struct Customer { id: uuid::Uuid, name: String, version: u64 }
//! impl Replica for Customer {
//!     type Id = uuid::Uuid;
//!     const ENTITY: &'static str = "customer";
//!     fn id(&self) -> &uuid::Uuid { &self.id }
//!     fn version(&self) -> u64 { self.version }
//! }
//!
//! let database = StoreSettings::choose(None, None, None).unwrap().open("billing").await?;
//! let customers = database.replicas::<Customer>("customers", ReplicaStart::FromFirst).await?;
//! let outbox = database.outbox(); // for a relay
//! # let _ = (customers, outbox); Ok(()) }
//! ```
#![cfg_attr(feature = "ticketing", doc = include_str!("../docs/stores.md"))]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod database;
pub mod memory;
#[cfg(feature = "mongo")]
#[cfg_attr(docsrs, doc(cfg(feature = "mongo")))]
pub mod mongo;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub mod postgres;

pub use database::{Database, SettingsError, StoreBackend, StoreSettings};
pub use memory::InMemoryDatabase;
