//! Choosing a store backend at run time: [`StoreSettings`] (plain, serde-deserializable) opens a
//! [`Database`], which hands out the outbox and replica stores of any record type — and, with
//! feature `ticketing`, one store per ticketing role — whatever the backend.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), ticketing_core::StoreError> {
//! # #[cfg(feature = "ticketing")] {
//! use ticketing_store::{StoreBackend, StoreSettings};
//!
//! // From configuration: `{"backend": "memory"}`, `{"backend": "postgres", "url": "postgres://…"}`,
//! // `{"backend": "mongo", "uri": "mongodb://…"}` …
//! let settings: StoreSettings = serde_json::from_str(r#"{"backend": "memory"}"#).unwrap();
//! // … or from environment-style values: memory unless a URL is given.
//! assert_eq!(StoreSettings::choose(None, None, None).unwrap(), settings);
//! assert_eq!(settings.backend(), StoreBackend::Memory);
//!
//! let db = settings.open_ticketing("tickets").await?;
//! let tickets = db.tickets(); // Arc<dyn TicketStore>, whatever the backend
//! assert!(tickets.list_unreserved().await?.is_empty());
//! # } Ok(()) }
//! ```

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::Deserialize;
use serde::Serialize;
use serde::de::DeserializeOwned;
use ticketing_core::config::redact_url;
use ticketing_core::outbox::Outbox;
use ticketing_core::store::{Replica, ReplicaStore, StoreError};
#[cfg(feature = "ticketing")]
use ticketing_core::ticketing::payment::{PayableOrderStore, PaymentStore};
#[cfg(feature = "ticketing")]
use ticketing_core::ticketing::store::{
    OrderReplicaStore, OrderStore, TicketReplicaStore, TicketStore, UserStore,
};
use ticketing_core::version::ReplicaStart;

use crate::memory::InMemoryDatabase;

/// A store backend, by name: `memory`, `postgres`, `mongo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    /// In-memory stores: one process, lost on exit.
    Memory,
    /// PostgreSQL (feature `postgres`).
    Postgres,
    /// MongoDB (feature `mongo`).
    Mongo,
}

impl StoreBackend {
    /// Every backend, by name.
    pub const ALL: [StoreBackend; 3] = [
        StoreBackend::Memory,
        StoreBackend::Postgres,
        StoreBackend::Mongo,
    ];

    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreBackend::Memory => "memory",
            StoreBackend::Postgres => "postgres",
            StoreBackend::Mongo => "mongo",
        }
    }
}

impl fmt::Display for StoreBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StoreBackend {
    type Err = SettingsError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        StoreBackend::ALL
            .into_iter()
            .find(|b| b.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                SettingsError(format!(
                    "unknown store backend {s:?}: memory, postgres or mongo"
                ))
            })
    }
}

/// Settings that do not say which backend to open, or how.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SettingsError(String);

/// Which database to open, and where. `Debug` and `Display` never show a password.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "backend", rename_all = "lowercase", deny_unknown_fields)]
pub enum StoreSettings {
    /// In-memory stores.
    #[default]
    Memory,
    /// PostgreSQL at `url`. Each service keeps its tables in a schema: `schema`, else the
    /// service's name.
    Postgres {
        /// `postgres://user:password@host:port/database`.
        url: String,
        /// The schema; default: the service's name.
        #[serde(default)]
        schema: Option<String>,
        /// Pool size; default 10.
        #[serde(default)]
        max_connections: Option<u32>,
        /// Connections opened when the pool is made and kept open (at most the pool size):
        /// a burst after a start does not wait for new connections. Default 0.
        #[serde(default)]
        min_connections: Option<u32>,
        /// How long a request waits for a connection before the store answers
        /// `Unavailable`, in seconds; default 3.
        #[serde(default)]
        timeout_seconds: Option<u64>,
    },
    /// MongoDB at `uri`. The database is `database`, else the one the URI names, else the
    /// service's name.
    Mongo {
        /// `mongodb://host:port/?directConnection=true`.
        uri: String,
        /// The database; default: the URI's, else the service's name.
        #[serde(default)]
        database: Option<String>,
        /// How long an operation waits to reach a server before the store answers
        /// `Unavailable`, in seconds; default 3, unless the URI sets `serverSelectionTimeoutMS`.
        #[serde(default)]
        timeout_seconds: Option<u64>,
    },
}

impl StoreSettings {
    /// The settings environment-style configuration means: `backend` if given (with the URL it
    /// needs), else PostgreSQL when `database_url` is set, MongoDB when `mongo_uri` is, memory
    /// when neither is. Both URLs without a backend is ambiguous: an error.
    pub fn choose(
        backend: Option<StoreBackend>,
        database_url: Option<&str>,
        mongo_uri: Option<&str>,
    ) -> Result<Self, SettingsError> {
        let backend = match (backend, database_url, mongo_uri) {
            (Some(backend), _, _) => backend,
            (None, Some(_), Some(_)) => {
                return Err(SettingsError(
                    "both DATABASE_URL and MONGO_URI are set: choose one with --store postgres|mongo"
                        .into(),
                ));
            }
            (None, Some(_), None) => StoreBackend::Postgres,
            (None, None, Some(_)) => StoreBackend::Mongo,
            (None, None, None) => StoreBackend::Memory,
        };
        Ok(match backend {
            StoreBackend::Memory => StoreSettings::Memory,
            StoreBackend::Postgres => StoreSettings::Postgres {
                url: database_url
                    .ok_or_else(|| SettingsError("--store postgres needs DATABASE_URL".into()))?
                    .to_owned(),
                schema: None,
                max_connections: None,
                min_connections: None,
                timeout_seconds: None,
            },
            StoreBackend::Mongo => StoreSettings::Mongo {
                uri: mongo_uri
                    .ok_or_else(|| SettingsError("--store mongo needs MONGO_URI".into()))?
                    .to_owned(),
                database: None,
                timeout_seconds: None,
            },
        })
    }

    /// These settings with a bound on how long the database may take to answer before a store
    /// operation fails with `Unavailable` (a pooled connection on PostgreSQL, a server on
    /// MongoDB); memory ignores it.
    pub fn with_timeout(mut self, timeout: std::time::Duration) -> Self {
        let seconds = timeout.as_secs().max(1);
        match &mut self {
            StoreSettings::Memory => {}
            StoreSettings::Postgres {
                timeout_seconds, ..
            }
            | StoreSettings::Mongo {
                timeout_seconds, ..
            } => *timeout_seconds = Some(seconds),
        }
        self
    }

    /// The same settings with at most `connections` pooled PostgreSQL connections (at least
    /// one); no effect on the other backends. With replicas, the database must accept
    /// replicas × services × this.
    pub fn with_max_connections(mut self, connections: u32) -> Self {
        if let StoreSettings::Postgres {
            max_connections, ..
        } = &mut self
        {
            *max_connections = Some(connections.max(1));
        }
        self
    }

    /// The same settings with `connections` PostgreSQL connections opened when the pool is
    /// made and kept open (at most the pool size); no effect on the other backends. A burst of
    /// requests right after a start then does not wait for connections to be made.
    pub fn with_min_connections(mut self, connections: u32) -> Self {
        if let StoreSettings::Postgres {
            min_connections, ..
        } = &mut self
        {
            *min_connections = Some(connections);
        }
        self
    }

    /// The backend these settings open.
    pub fn backend(&self) -> StoreBackend {
        match self {
            StoreSettings::Memory => StoreBackend::Memory,
            StoreSettings::Postgres { .. } => StoreBackend::Postgres,
            StoreSettings::Mongo { .. } => StoreBackend::Mongo,
        }
    }

    /// Opens the ticketing database of `service`: [`open`](Self::open), then the ticketing
    /// tables (PostgreSQL migrations) or indexes (MongoDB).
    #[cfg(feature = "ticketing")]
    #[cfg_attr(docsrs, doc(cfg(feature = "ticketing")))]
    pub async fn open_ticketing(&self, service: &str) -> Result<Database, StoreError> {
        let db = self.connect(service).await?;
        match &db {
            Database::Memory(_) => {}
            #[cfg(feature = "postgres")]
            Database::Postgres(pg) => pg.migrate_ticketing().await?,
            #[cfg(feature = "mongo")]
            Database::Mongo(mongo) => mongo.create_indexes().await?,
        }
        Ok(db)
    }

    /// Opens the database of `service`: an empty in-memory database, or connects, creates the
    /// service's schema and runs the SDK's migrations (PostgreSQL: the outbox), or connects
    /// (MongoDB). A backend this build lacks is an error naming the feature.
    pub async fn open(&self, service: &str) -> Result<Database, StoreError> {
        let db = self.connect(service).await?;
        #[cfg(feature = "postgres")]
        if let Database::Postgres(pg) = &db {
            pg.migrate().await?;
        }
        Ok(db)
    }

    /// Connects, creating the PostgreSQL schema, and runs no migration.
    async fn connect(&self, service: &str) -> Result<Database, StoreError> {
        #[cfg(not(all(feature = "postgres", feature = "mongo")))]
        let _ = service;
        match self {
            StoreSettings::Memory => Ok(Database::Memory(InMemoryDatabase::new())),
            #[cfg(feature = "postgres")]
            StoreSettings::Postgres {
                url,
                schema,
                max_connections,
                min_connections,
                timeout_seconds,
            } => crate::postgres::PgDatabase::open_schema_pool(
                url,
                schema.as_deref().unwrap_or(service),
                sqlx::postgres::PgPoolOptions::new()
                    .max_connections(max_connections.unwrap_or(10))
                    .min_connections(
                        min_connections
                            .unwrap_or(0)
                            .min(max_connections.unwrap_or(10)),
                    )
                    .acquire_timeout(timeout_seconds.map_or(
                        crate::postgres::DEFAULT_ACQUIRE_TIMEOUT,
                        std::time::Duration::from_secs,
                    )),
            )
            .await
            .map(Database::Postgres),
            #[cfg(feature = "mongo")]
            StoreSettings::Mongo {
                uri,
                database,
                timeout_seconds,
            } => {
                let timeout = timeout_seconds.map(std::time::Duration::from_secs);
                crate::mongo::MongoDatabase::connect_with(
                    uri,
                    database.as_deref(),
                    service,
                    timeout,
                )
                .await
                .map(Database::Mongo)
            }
            #[allow(unreachable_patterns)]
            other => Err(StoreError::backend(
                other.backend().as_str(),
                format!(
                    "this build has no {0} backend: enable the `{0}` feature of ticketing-store",
                    other.backend()
                ),
            )),
        }
    }
}

impl fmt::Display for StoreSettings {
    /// A description for start-up logs, without passwords.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreSettings::Memory => f.write_str("in-memory stores"),
            StoreSettings::Postgres { url, schema, .. } => {
                write!(f, "PostgreSQL at {}", redact_url(url))?;
                match schema {
                    Some(schema) => write!(f, " (schema {schema})"),
                    None => Ok(()),
                }
            }
            StoreSettings::Mongo { uri, database, .. } => {
                write!(f, "MongoDB at {}", redact_url(uri))?;
                match database {
                    Some(database) => write!(f, " (database {database})"),
                    None => Ok(()),
                }
            }
        }
    }
}

impl fmt::Debug for StoreSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreSettings::Memory => f.write_str("Memory"),
            StoreSettings::Postgres {
                url,
                schema,
                max_connections,
                min_connections,
                timeout_seconds,
            } => f
                .debug_struct("Postgres")
                .field("url", &redact_url(url))
                .field("schema", schema)
                .field("max_connections", max_connections)
                .field("min_connections", min_connections)
                .field("timeout_seconds", timeout_seconds)
                .finish(),
            StoreSettings::Mongo {
                uri,
                database,
                timeout_seconds,
            } => f
                .debug_struct("Mongo")
                .field("uri", &redact_url(uri))
                .field("database", database)
                .field("timeout_seconds", timeout_seconds)
                .finish(),
        }
    }
}

/// An open database of one service, on any backend: its outbox, its replica stores of any
/// record type and (feature `ticketing`) one store per ticketing role. Every call hands out a
/// store over the same data.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Database {
    /// In memory.
    Memory(InMemoryDatabase),
    /// PostgreSQL, in the service's schema.
    #[cfg(feature = "postgres")]
    #[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
    Postgres(crate::postgres::PgDatabase),
    /// MongoDB.
    #[cfg(feature = "mongo")]
    #[cfg_attr(docsrs, doc(cfg(feature = "mongo")))]
    Mongo(crate::mongo::MongoDatabase),
}

/// Calls the same role method on whichever backend `$db` is.
#[cfg(feature = "ticketing")]
macro_rules! role {
    ($db:expr, $role:ident) => {
        match $db {
            Database::Memory(db) => Arc::new(db.$role()),
            #[cfg(feature = "postgres")]
            Database::Postgres(db) => Arc::new(db.$role()),
            #[cfg(feature = "mongo")]
            Database::Mongo(db) => Arc::new(db.$role()),
        }
    };
}

impl Database {
    /// The outbox: what a service's changes committed, for a relay
    /// ([`spawn_relay`](ticketing_core::outbox::spawn_relay)). On MongoDB the ticketing
    /// collections' (use [`MongoDatabase::outbox_for`](crate::mongo::MongoDatabase::outbox_for)
    /// for your own).
    pub fn outbox(&self) -> Arc<dyn Outbox> {
        match self {
            Database::Memory(db) => Arc::new(db.outbox()),
            #[cfg(feature = "postgres")]
            Database::Postgres(db) => Arc::new(db.outbox()),
            #[cfg(all(feature = "mongo", feature = "ticketing"))]
            Database::Mongo(db) => Arc::new(db.outbox()),
            #[cfg(all(feature = "mongo", not(feature = "ticketing")))]
            Database::Mongo(_) => Arc::new(EmptyOutbox),
        }
    }

    /// The replica store of record type `R` named `name` (a table, collection or in-memory map
    /// of that name), starting records it has not seen as `start` says.
    pub async fn replicas<R>(
        &self,
        name: &str,
        start: ReplicaStart,
    ) -> Result<Arc<dyn ReplicaStore<R>>, StoreError>
    where
        R: Replica + Serialize + DeserializeOwned,
    {
        Ok(match self {
            Database::Memory(db) => Arc::new(db.replicas::<R>(name, start)?),
            #[cfg(feature = "postgres")]
            Database::Postgres(db) => Arc::new(db.replicas::<R>(name, start).await?),
            #[cfg(feature = "mongo")]
            Database::Mongo(db) => Arc::new(db.replicas::<R>(name, start)),
        })
    }
}

/// The outbox of a MongoDB database without ticketing collections: nothing, ever.
#[cfg(all(feature = "mongo", not(feature = "ticketing")))]
#[derive(Debug)]
struct EmptyOutbox;

#[cfg(all(feature = "mongo", not(feature = "ticketing")))]
#[async_trait::async_trait]
impl Outbox for EmptyOutbox {
    async fn pending(
        &self,
        _: usize,
    ) -> Result<Vec<ticketing_core::outbox::OutboxEvent>, StoreError> {
        Ok(Vec::new())
    }
    async fn remove(&self, _: &[ticketing_core::outbox::OutboxId]) -> Result<(), StoreError> {
        Ok(())
    }
}

#[cfg(feature = "ticketing")]
#[cfg_attr(docsrs, doc(cfg(feature = "ticketing")))]
impl Database {
    /// Users (auth).
    pub fn users(&self) -> Arc<dyn UserStore> {
        role!(self, users)
    }

    /// Tickets (tickets service).
    pub fn tickets(&self) -> Arc<dyn TicketStore> {
        role!(self, tickets)
    }

    /// The replica of orders (tickets service).
    pub fn order_replicas(&self) -> Arc<dyn OrderReplicaStore> {
        role!(self, order_replicas)
    }

    /// The replica of tickets (orders service).
    pub fn ticket_replicas(&self) -> Arc<dyn TicketReplicaStore> {
        role!(self, ticket_replicas)
    }

    /// Orders, joined with the ticket replica (orders service).
    pub fn orders(&self) -> Arc<dyn OrderStore> {
        role!(self, orders)
    }

    /// Payments (payments service).
    pub fn payments(&self) -> Arc<dyn PaymentStore> {
        role!(self, payments)
    }

    /// The replica of orders (payments service).
    pub fn payable_orders(&self) -> Arc<dyn PayableOrderStore> {
        role!(self, payable_orders)
    }
}

impl Database {
    /// Whether the database answers now, for readiness probes: a round trip (`SELECT 1`, the
    /// `ping` command); always for memory.
    pub async fn ping(&self) -> Result<(), StoreError> {
        match self {
            Database::Memory(_) => Ok(()),
            #[cfg(feature = "postgres")]
            Database::Postgres(db) => db.ping().await,
            #[cfg(feature = "mongo")]
            Database::Mongo(db) => db.ping().await,
        }
    }

    /// The backend.
    pub fn backend(&self) -> StoreBackend {
        match self {
            Database::Memory(_) => StoreBackend::Memory,
            #[cfg(feature = "postgres")]
            Database::Postgres(_) => StoreBackend::Postgres,
            #[cfg(feature = "mongo")]
            Database::Mongo(_) => StoreBackend::Mongo,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_is_the_default_and_urls_select_backends() {
        let choose = |b: Option<&str>, pg: Option<&str>, mongo: Option<&str>| {
            StoreSettings::choose(b.map(|b| b.parse().unwrap()), pg, mongo).map(|s| s.backend())
        };
        assert_eq!(choose(None, None, None), Ok(StoreBackend::Memory));
        assert_eq!(
            choose(None, Some("postgres://h/db"), None),
            Ok(StoreBackend::Postgres)
        );
        assert_eq!(
            choose(None, None, Some("mongodb://h")),
            Ok(StoreBackend::Mongo)
        );
        assert!(
            choose(None, Some("postgres://h"), Some("mongodb://h")).is_err(),
            "ambiguous"
        );
        assert_eq!(
            choose(Some("mongo"), Some("postgres://h"), Some("mongodb://h")),
            Ok(StoreBackend::Mongo)
        );
        assert_eq!(
            choose(Some("MEMORY"), Some("postgres://h"), None),
            Ok(StoreBackend::Memory)
        );
        let missing = choose(Some("postgres"), None, None).unwrap_err();
        assert!(missing.to_string().contains("DATABASE_URL"), "{missing}");
        assert!("sqlite".parse::<StoreBackend>().is_err());
    }

    #[test]
    fn settings_deserialize_by_backend_name() {
        let pg: StoreSettings = serde_json::from_str(
            r#"{"backend": "postgres", "url": "postgres://u:pw@h/db", "schema": "tickets"}"#,
        )
        .unwrap();
        assert_eq!(
            pg,
            StoreSettings::Postgres {
                url: "postgres://u:pw@h/db".into(),
                schema: Some("tickets".into()),
                max_connections: None,
                min_connections: None,
                timeout_seconds: None,
            }
        );
        let err = serde_json::from_str::<StoreSettings>(r#"{"backend": "postgres"}"#);
        assert!(err.is_err(), "a URL is required");
        let err = serde_json::from_str::<StoreSettings>(r#"{"backend": "oracle"}"#);
        assert!(err.is_err());
    }

    #[test]
    fn passwords_never_print() {
        let pg = StoreSettings::choose(None, Some("postgres://u:hunter2@h/db"), None).unwrap();
        let mongo = StoreSettings::choose(None, None, Some("mongodb://u:hunter2@h")).unwrap();
        for printed in [
            format!("{pg}"),
            format!("{pg:?}"),
            format!("{mongo}"),
            format!("{mongo:?}"),
        ] {
            assert!(!printed.contains("hunter2"), "{printed}");
            assert!(printed.contains("u:***@h"), "{printed}");
        }
    }

    #[cfg(feature = "ticketing")]
    #[tokio::test]
    async fn a_memory_database_hands_out_stores_over_the_same_data() {
        use ticketing_core::Id;
        use ticketing_core::ticketing::store::{Ticket, TicketReplica};

        let db = StoreSettings::Memory
            .open_ticketing("tickets")
            .await
            .unwrap();
        assert_eq!(db.backend(), StoreBackend::Memory);
        let ticket = Ticket {
            id: Id::new(),
            title: "t".into(),
            price: "5".parse().unwrap(),
            user_id: Id::new(),
            version: 0,
            order_id: None,
        };
        db.tickets().create(ticket.clone()).await.unwrap();
        assert_eq!(db.tickets().get(ticket.id).await.unwrap(), ticket);
        // The orders store joins the replica the same handle holds.
        let replica = TicketReplica {
            id: ticket.id,
            title: "t".into(),
            price: ticket.price,
            version: 0,
        };
        db.ticket_replicas().apply(&replica).await.unwrap();
        let order = db
            .orders()
            .reserve(ticketing_core::ticketing::store::NewOrder {
                id: Id::new(),
                user_id: Id::new(),
                ticket_id: ticket.id,
                expires_at: chrono::Utc::now(),
            })
            .await
            .unwrap();
        assert_eq!(order.ticket, replica);
    }

    #[cfg(not(feature = "postgres"))]
    #[tokio::test]
    async fn a_backend_this_build_lacks_names_its_feature() {
        let settings = StoreSettings::choose(None, Some("postgres://h/db"), None).unwrap();
        let err = settings.open("tickets").await.unwrap_err().to_string();
        assert!(err.contains("`postgres` feature"), "{err}");
    }
}
