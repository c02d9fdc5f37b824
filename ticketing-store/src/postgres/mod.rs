//! PostgreSQL stores, on sqlx.
//!
//! [`PgDatabase::connect`] opens a pool on one database (or one schema) and runs the SDK's
//! migrations — the `outbox` and `outbox_lease` tables, recorded in a history table of their own
//! (`_ticketing_sdk_migrations`), so your own `sqlx::migrate!()` runs beside them on
//! `_sqlx_migrations`. Then:
//!
//! - **Your change and its events in one transaction:** [`append`] writes events into the outbox
//!   inside your own `sqlx::Transaction`; they are published by the relay
//!   ([`spawn_relay`](ticketing_core::outbox::spawn_relay) over [`PgDatabase::outbox`]) once,
//!   and only if, it commits. The outbox table's trigger wakes the relays of every process on
//!   commit.
//! - **Replicas of any record type:** [`PgDatabase::replicas`] opens a [`PgReplicaStore`], a
//!   JSONB document table with `id` and `version` columns, created if missing.
//!
//! ```no_run
//! # async fn demo() -> Result<(), ticketing_core::StoreError> {
//! use ticketing_core::OutgoingMessage;
//! use ticketing_store::postgres::{PgDatabase, append};
//!
//! let db = PgDatabase::connect_schema("postgres://postgres@127.0.0.1/shop", "billing").await?;
//! let mut tx = db.pool().begin().await.map_err(ticketing_store::postgres::error)?;
//! // ... your own statements in `tx` ...
//! let invoiced = OutgoingMessage::new("invoice:sent", r#"{"id":"inv-1"}"#)
//!     .with_message_id("invoice:sent:inv-1");
//! append(&mut tx, "invoice:inv-1", &[invoiced]).await?;
//! tx.commit().await.map_err(ticketing_store::postgres::error)?;
//! # Ok(()) }
//! ```
//!
//! A database that cannot be reached (refused, reset, or no pooled connection free within
//! [`DEFAULT_ACQUIRE_TIMEOUT`]) is [`StoreError::Unavailable`], never a 30 s hang.
//!
//! With feature `ticketing`, the same database also hands out the ticketing roles
//! (`PgTicketStore`, `PgOrderStore`, ...) once `PgDatabase::migrate_ticketing` created their
//! tables.

use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::error::ErrorKind;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgArguments, PgConnectOptions, PgListener, PgPool, PgPoolOptions, PgRow};
use sqlx::{PgConnection, Postgres, Row};
use tokio::sync::Notify;

use ticketing_core::OutgoingMessage;
use ticketing_core::outbox::{Outbox, OutboxEvent, OutboxId};
use ticketing_core::store::{Replica, ReplicaStore, StoreError};
use ticketing_core::version::{ReplicaStart, Version};

#[cfg(feature = "ticketing")]
mod ticketing;
#[cfg(feature = "ticketing")]
#[cfg_attr(docsrs, doc(cfg(feature = "ticketing")))]
pub use ticketing::{
    PgOrderReplicaStore, PgOrderStore, PgPayableOrderStore, PgPaymentStore, PgTicketReplicaStore,
    PgTicketStore, PgTypedReplicaStore, PgUserStore, TICKETING_MIGRATOR, TypedReplica,
};

mod outbox;
mod replica;
pub use outbox::{PgOutbox, append};
pub use replica::PgReplicaStore;
pub(crate) use replica::VersionedSql;

const BACKEND: &str = "postgres";

/// The SDK's migrations: the outbox and its lease.
static SDK_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sdk");

/// The table the SDK's migrations are recorded in: not `_sqlx_migrations`, which is yours.
pub const SDK_MIGRATIONS_TABLE: &str = "_ticketing_sdk_migrations";

/// How long a request waits for a pooled connection before the store answers
/// [`StoreError::Unavailable`]: 3 s (sqlx's own default is 30 s).
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// The SDK's migrator, recording in [`SDK_MIGRATIONS_TABLE`].
pub fn sdk_migrator() -> Migrator {
    let mut migrator = Migrator::with_migrations(SDK_MIGRATIONS.iter().cloned().collect());
    migrator.dangerous_set_table_name(SDK_MIGRATIONS_TABLE);
    migrator
}

/// A pool on one database (or one schema, through `search_path`), migrated.
#[derive(Debug, Clone)]
pub struct PgDatabase {
    pool: PgPool,
    wake: Arc<Notify>,
}

/// A driver error as a [`StoreError`]: `Unavailable` when the database cannot be reached
/// (connection refused, reset or closed, no pooled connection free in time, the server
/// shutting down), `Backend` otherwise. For the `map_err` of your own statements.
pub fn error(error: sqlx::Error) -> StoreError {
    backend(error)
}

/// A statement of this backend with its arguments bound.
pub(crate) type PgQuery<'q> = sqlx::query::Query<'q, Postgres, PgArguments>;

/// The rows `query` returns on `executor`, each decoded by `decode`: every store's reads go
/// through here, so the fetch, the error mapping and the decoding are written once.
pub(crate) async fn rows<'c, T>(
    query: PgQuery<'_>,
    executor: impl sqlx::PgExecutor<'c>,
    decode: impl Fn(&PgRow) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let rows = query.fetch_all(executor).await.map_err(backend)?;
    rows.iter().map(decode).collect()
}

/// The row `query` returns on `executor`, if any, decoded by `decode` (the role stores' reads).
#[cfg(feature = "ticketing")]
pub(crate) async fn row<'c, T>(
    query: PgQuery<'_>,
    executor: impl sqlx::PgExecutor<'c>,
    decode: impl Fn(&PgRow) -> Result<T, StoreError>,
) -> Result<Option<T>, StoreError> {
    let row = query.fetch_optional(executor).await.map_err(backend)?;
    row.as_ref().map(decode).transpose()
}

pub(crate) fn backend(error: impl Into<ticketing_core::bus::BoxError>) -> StoreError {
    let error = error.into();
    match error.downcast_ref::<sqlx::Error>() {
        Some(driver) if is_unreachable(driver) => StoreError::Unavailable {
            backend: BACKEND,
            source: error,
        },
        _ => StoreError::Backend {
            backend: BACKEND,
            source: error,
        },
    }
}

fn unreachable(error: impl Into<ticketing_core::bus::BoxError>) -> StoreError {
    StoreError::unavailable(BACKEND, error)
}

/// Whether a driver error means the database cannot be reached now.
fn is_unreachable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        // Class 08: connection exception; 57P01-57P03: admin or crash shutdown, cannot connect now.
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            code.starts_with("08") || matches!(&*code, "57P01" | "57P02" | "57P03")
        }),
        _ => false,
    }
}

pub(crate) fn corrupt(entity: &'static str, reason: impl ToString) -> StoreError {
    StoreError::Corrupt {
        entity,
        reason: reason.to_string(),
    }
}

/// The kind and constraint of a database error, if it is one.
pub(crate) fn violation(error: &sqlx::Error) -> Option<(ErrorKind, String)> {
    match error {
        sqlx::Error::Database(db) => {
            Some((db.kind(), db.constraint().unwrap_or_default().to_owned()))
        }
        _ => None,
    }
}

/// A table name as a quoted identifier; anything but letters, digits and `_` is refused.
fn identifier(name: &str) -> Result<String, StoreError> {
    let plain = !name.is_empty()
        && name.len() <= 63
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain {
        Ok(format!("\"{name}\""))
    } else {
        Err(backend(format!("invalid table name {name:?}")))
    }
}

impl PgDatabase {
    /// Connects to `url` (up to 10 connections) and runs the SDK's migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url).map_err(backend)?;
        Self::connect_with(options, 10).await
    }

    /// Connects with these options (a pool of up to `max_connections`, waiting at most
    /// [`DEFAULT_ACQUIRE_TIMEOUT`] for a connection) and runs the SDK's migrations. Set
    /// `search_path` in the options to keep the tables in a schema of their own.
    pub async fn connect_with(
        options: PgConnectOptions,
        max_connections: u32,
    ) -> Result<Self, StoreError> {
        Self::connect_pool(
            PgPoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(DEFAULT_ACQUIRE_TIMEOUT),
            options,
        )
        .await
    }

    /// Connects with a pool configured in full (size, acquire timeout, ...) and runs the SDK's
    /// migrations.
    pub async fn connect_pool(
        pool: PgPoolOptions,
        options: PgConnectOptions,
    ) -> Result<Self, StoreError> {
        let db = Self::open_pool(pool, options).await?;
        db.migrate().await?;
        Ok(db)
    }

    /// Connects without running any migration.
    pub(crate) async fn open_pool(
        pool: PgPoolOptions,
        options: PgConnectOptions,
    ) -> Result<Self, StoreError> {
        let pool = pool
            .connect_with(options)
            .await
            .map_err(|e| unreachable(format!("cannot connect to PostgreSQL: {e}")))?;
        Ok(PgDatabase::from_pool(pool))
    }

    /// Connects to `url` with its tables in `schema` (created if missing) and runs the
    /// migrations there. Several services share one database this way, each in its schema.
    pub async fn connect_schema(url: &str, schema: &str) -> Result<Self, StoreError> {
        Self::connect_schema_with(url, schema, 10).await
    }

    /// [`connect_schema`](Self::connect_schema) with a pool of up to `max_connections`.
    pub async fn connect_schema_with(
        url: &str,
        schema: &str,
        max_connections: u32,
    ) -> Result<Self, StoreError> {
        Self::connect_schema_pool(
            url,
            schema,
            PgPoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(DEFAULT_ACQUIRE_TIMEOUT),
        )
        .await
    }

    /// [`connect_schema`](Self::connect_schema) with a pool configured in full.
    pub async fn connect_schema_pool(
        url: &str,
        schema: &str,
        pool: PgPoolOptions,
    ) -> Result<Self, StoreError> {
        let db = Self::open_schema_pool(url, schema, pool).await?;
        db.migrate().await?;
        Ok(db)
    }

    /// Creates the schema if missing and connects into it, without running any migration.
    pub(crate) async fn open_schema_pool(
        url: &str,
        schema: &str,
        pool: PgPoolOptions,
    ) -> Result<Self, StoreError> {
        if schema.is_empty()
            || !schema
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(backend(format!("invalid schema name {schema:?}")));
        }
        let options = PgConnectOptions::from_str(url).map_err(backend)?;
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await
            .map_err(|e| unreachable(format!("cannot connect to PostgreSQL: {e}")))?;
        let create = format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"");
        let created = sqlx::query(sqlx::AssertSqlSafe(create))
            .execute(&admin)
            .await;
        admin.close().await;
        if let Err(e) = created {
            // Concurrent creators race on the catalog; the schema exists either way.
            if !matches!(violation(&e), Some((ErrorKind::UniqueViolation, _))) {
                return Err(backend(e));
            }
        }
        Self::open_pool(pool, options.options([("search_path", schema)])).await
    }

    /// Uses an existing pool; call [`migrate`](Self::migrate) unless it is migrated already.
    pub fn from_pool(pool: PgPool) -> Self {
        PgDatabase {
            pool,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Runs the SDK's migrations that have not run yet (the outbox and its lease), recorded
    /// in [`SDK_MIGRATIONS_TABLE`]. Idempotent; safe from several processes at once.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        sdk_migrator()
            .run(&self.pool)
            .await
            .map_err(|e| backend(format!("migrations failed: {e}")))
    }

    /// The pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// A round trip: `SELECT 1`; `Unavailable` when the database cannot be reached.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(backend)
    }

    /// The replica store of record type `R` in `table` (created if missing: `id TEXT PRIMARY
    /// KEY`, `version BIGINT`, `doc JSONB`), starting records it has not seen as `start` says.
    /// Ids are stored as their `Display` text, which must tell them apart. `table` must be a
    /// plain identifier (letters, digits, `_`).
    pub async fn replicas<R>(
        &self,
        table: &str,
        start: ReplicaStart,
    ) -> Result<PgReplicaStore<R>, StoreError>
    where
        R: Replica + Serialize + DeserializeOwned,
    {
        let table = identifier(table)?;
        let create = format!(
            "CREATE TABLE IF NOT EXISTS {table} (\
             id TEXT PRIMARY KEY, \
             version BIGINT NOT NULL CHECK (version >= 0), \
             doc JSONB NOT NULL, \
             updated_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        );
        if let Err(e) = sqlx::query(sqlx::AssertSqlSafe(create))
            .execute(&self.pool)
            .await
        {
            // Concurrent creators race on the catalog; the table exists either way.
            if !matches!(violation(&e), Some((ErrorKind::UniqueViolation, _))) {
                return Err(backend(e));
            }
        }
        Ok(PgReplicaStore {
            pool: self.pool.clone(),
            sql: Arc::new(VersionedSql::new(&table, &[("doc", "::jsonb")])),
            find: Arc::from(format!("SELECT doc::text FROM {table} WHERE id = $1")),
            start,
            record: PhantomData,
        })
    }

    /// The outbox: what [`append`] wrote in committed transactions (and, with feature
    /// `ticketing`, what the ticketing stores commit), for a relay.
    pub fn outbox(&self) -> PgOutbox {
        PgOutbox {
            pool: self.pool.clone(),
            wake: self.wake.clone(),
            listener: Arc::new(OnceLock::new()),
        }
    }
}

pub(crate) fn db_version(version: Version) -> Result<i64, StoreError> {
    i64::try_from(version).map_err(|e| corrupt("version", e))
}
