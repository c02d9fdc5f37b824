//! Store backends for [`ticketing_core::store`]: in-memory, PostgreSQL and MongoDB.
//!
//! # Feature flags
//!
//! | feature | backend |
//! |---|---|
//! | (always) | [`memory`]: `InMemoryUserStore`, `InMemoryTicketStore`, ... |
//! | `postgres` | `postgres`: `PgUserStore`, `PgTicketStore`, ... (sqlx; migrations embedded, run by `connect`) |
//! | `mongo` | `mongo`: `MongoUserStore`, `MongoTicketStore`, ... (the official driver) |
//! | `all-backends` | all of the above |
//!
//! Every backend passes the store conformance suite of `ticketing-core`.
//!
//! # Choosing a backend at run time
//!
//! [`StoreSettings`] (serde-deserializable; [`StoreSettings::choose`] for environment-style
//! values) opens a [`Database`], which hands out one `Arc<dyn …Store>` per role whatever the
//! backend: services never name one.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), ticketing_core::StoreError> {
//! use ticketing_store::StoreSettings;
//!
//! let database = StoreSettings::choose(None, None, None).unwrap().open("orders").await?;
//! let (orders, tickets) = (database.orders(), database.ticket_replicas());
//! # let _ = (orders, tickets); Ok(()) }
//! ```
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), ticketing_core::StoreError> {
//! use ticketing_core::store::{Ticket, TicketStore};
//! use ticketing_core::{Id, StoreError};
//! use ticketing_store::memory::InMemoryTicketStore;
//!
//! let tickets = InMemoryTicketStore::new();
//! let ticket = tickets
//!     .create(Ticket { id: Id::new(), title: "concert".into(), price: "20".parse().unwrap(),
//!                      user_id: Id::new(), version: 0, order_id: None })
//!     .await?;
//! let edited = tickets.update(&Ticket { title: "opera".into(), ..ticket.clone() }).await?;
//! assert_eq!(edited.version, 1);
//! // A second writer of version 0 loses:
//! let stale = tickets.update(&Ticket { title: "ballet".into(), ..ticket }).await;
//! assert!(matches!(stale, Err(StoreError::VersionConflict { .. })));
//! # Ok(()) }
//! ```
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
