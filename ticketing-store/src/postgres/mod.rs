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
use sqlx::postgres::{PgArguments, PgConnectOptions, PgListener, PgPool, PgPoolOptions};
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
    PgTicketStore, PgUserStore, TICKETING_MIGRATOR,
};

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

/// Writes `messages`, in order, into the outbox as events of the record `key`, inside the
/// caller's transaction (or on any connection: `&mut *tx`, `&mut *conn`). They are committed
/// with whatever else the transaction wrote, or not at all, and the relay publishes them after
/// the commit: the outbox table's trigger notifies the relays of every process that listens on
/// this schema. Events of one key are published in commit order.
///
/// ```no_run
/// # async fn demo(db: ticketing_store::postgres::PgDatabase) -> Result<(), ticketing_core::StoreError> {
/// use ticketing_core::OutgoingMessage;
/// use ticketing_store::postgres::{append, error};
///
/// let mut tx = db.pool().begin().await.map_err(error)?;
/// sqlx::query("UPDATE accounts SET balance = balance - 10, version = version + 1 WHERE id = 'a1'")
///     .execute(&mut *tx)
///     .await
///     .map_err(error)?;
/// append(&mut tx, "account:a1", &[OutgoingMessage::new("account:debited", "{}")]).await?;
/// tx.commit().await.map_err(error)?;
/// # Ok(()) }
/// ```
pub async fn append(
    conn: &mut PgConnection,
    key: &str,
    messages: &[OutgoingMessage],
) -> Result<(), StoreError> {
    match messages {
        [] => Ok(()),
        [message] => {
            let headers = serde_json::to_string(&message.headers).map_err(backend)?;
            sqlx::query(
                "INSERT INTO outbox (key, subject, payload, headers, message_id) \
                 VALUES ($1, $2, $3, $4::jsonb, $5)",
            )
            .bind(key)
            .bind(&message.subject)
            .bind(message.payload.as_ref())
            .bind(headers)
            .bind(message.message_id.as_deref())
            .execute(&mut *conn)
            .await
            .map_err(backend)?;
            Ok(())
        }
        many => {
            // One statement for the lot; WITH ORDINALITY keeps their order in the ids.
            let mut subjects = Vec::with_capacity(many.len());
            let mut payloads = Vec::with_capacity(many.len());
            let mut headers = Vec::with_capacity(many.len());
            let mut ids = Vec::with_capacity(many.len());
            for message in many {
                subjects.push(message.subject.clone());
                payloads.push(message.payload.to_vec());
                headers.push(serde_json::to_string(&message.headers).map_err(backend)?);
                ids.push(message.message_id.clone());
            }
            sqlx::query(
                "INSERT INTO outbox (key, subject, payload, headers, message_id) \
                 SELECT $1, s, p, h::jsonb, m \
                 FROM unnest($2::text[], $3::bytea[], $4::text[], $5::text[]) \
                 WITH ORDINALITY AS e(s, p, h, m, n) ORDER BY n",
            )
            .bind(key)
            .bind(subjects)
            .bind(payloads)
            .bind(headers)
            .bind(ids)
            .execute(&mut *conn)
            .await
            .map_err(backend)?;
            Ok(())
        }
    }
}

/// The statements of a versioned replica write on a table with `id` and `version` columns: the
/// one helper every PostgreSQL replica table uses (the generic document tables and the
/// ticketing system's typed ones). Parameters: `$1` the id, then the columns in order, then the
/// version.
#[derive(Debug)]
pub(crate) struct VersionedSql {
    /// Version 0: a new row, or nothing.
    insert: Arc<str>,
    /// Version N > 0: the row at N − 1, or nothing.
    update: Arc<str>,
    /// Version N > 0 under `FirstSeen`: a new row, or the row at N − 1, or nothing.
    upsert: Arc<str>,
}

impl VersionedSql {
    /// `table` quoted or plain; each column with the cast its parameter needs (`""`, `"::jsonb"`).
    pub(crate) fn new(table: &str, columns: &[(&str, &str)]) -> Self {
        let version = columns.len() + 2;
        let names: Vec<&str> = columns.iter().map(|(name, _)| *name).collect();
        let params: Vec<String> = columns
            .iter()
            .enumerate()
            .map(|(i, (_, cast))| format!("${}{cast}", i + 2))
            .collect();
        let sets: Vec<String> = names
            .iter()
            .zip(&params)
            .map(|(name, param)| format!("{name} = {param}"))
            .collect();
        let excluded: Vec<String> = names
            .iter()
            .map(|name| format!("{name} = EXCLUDED.{name}"))
            .collect();
        let insert = format!(
            "INSERT INTO {table} (id, {}, version) VALUES ($1, {}, ${version})",
            names.join(", "),
            params.join(", ")
        );
        VersionedSql {
            update: Arc::from(format!(
                "UPDATE {table} SET {}, version = ${version} WHERE id = $1 AND version = ${version} - 1",
                sets.join(", ")
            )),
            upsert: Arc::from(format!(
                "{insert} ON CONFLICT (id) DO UPDATE SET {}, version = EXCLUDED.version \
                 WHERE {table}.version = EXCLUDED.version - 1",
                excluded.join(", ")
            )),
            insert: Arc::from(format!("{insert} ON CONFLICT (id) DO NOTHING")),
        }
    }

    /// Runs the write of `version` of record `id`; `bind` binds the columns. One row touched is
    /// applied, none a `VersionConflict`.
    pub(crate) async fn apply<'q>(
        &self,
        pool: &PgPool,
        start: ReplicaStart,
        entity: &'static str,
        id: &str,
        version: Version,
        bind: impl FnOnce(
            sqlx::query::Query<'q, Postgres, PgArguments>,
        ) -> sqlx::query::Query<'q, Postgres, PgArguments>,
    ) -> Result<(), StoreError> {
        let sql = match (version, start) {
            (0, _) => &self.insert,
            (_, ReplicaStart::FromFirst) => &self.update,
            (_, ReplicaStart::FirstSeen) => &self.upsert,
        };
        let query = sqlx::query(sqlx::AssertSqlSafe(sql.clone())).bind(id.to_owned());
        let done = bind(query)
            .bind(db_version(version)?)
            .execute(pool)
            .await
            .map_err(backend)?
            .rows_affected();
        if done == 1 {
            Ok(())
        } else {
            Err(StoreError::conflict(entity, id, version.saturating_sub(1)))
        }
    }
}

/// Replicas of one record type in PostgreSQL: a document table (`id`, `version`, `doc JSONB`)
/// opened by [`PgDatabase::replicas`]. The version check is in the write itself.
pub struct PgReplicaStore<R> {
    pool: PgPool,
    sql: Arc<VersionedSql>,
    find: Arc<str>,
    start: ReplicaStart,
    record: PhantomData<fn() -> R>,
}

impl<R> Clone for PgReplicaStore<R> {
    fn clone(&self) -> Self {
        PgReplicaStore {
            pool: self.pool.clone(),
            sql: self.sql.clone(),
            find: self.find.clone(),
            start: self.start,
            record: PhantomData,
        }
    }
}

impl<R> fmt::Debug for PgReplicaStore<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgReplicaStore")
            .field("find", &self.find)
            .field("start", &self.start)
            .finish_non_exhaustive()
    }
}

impl<R> PgReplicaStore<R> {
    /// This store's table, starting records it has not seen as `start` says.
    pub fn starting(&self, start: ReplicaStart) -> Self {
        PgReplicaStore {
            start,
            ..self.clone()
        }
    }
}

#[async_trait]
impl<R> ReplicaStore<R> for PgReplicaStore<R>
where
    R: Replica + Serialize + DeserializeOwned,
{
    async fn find(&self, id: &R::Id) -> Result<Option<R>, StoreError> {
        let doc: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(self.find.clone()))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        doc.map(|doc| serde_json::from_str(&doc).map_err(|e| corrupt(R::ENTITY, e)))
            .transpose()
    }

    async fn apply(&self, record: &R) -> Result<(), StoreError> {
        let doc = serde_json::to_string(record).map_err(|e| corrupt(R::ENTITY, e))?;
        self.sql
            .apply(
                &self.pool,
                self.start,
                R::ENTITY,
                &record.id().to_string(),
                record.version(),
                |query| query.bind(doc),
            )
            .await
    }

    fn start(&self) -> ReplicaStart {
        self.start
    }
}

/// The outbox of one schema: the `outbox` table that [`append`] (and the ticketing stores)
/// write in their transactions. [`changed`](Outbox::changed) completes on a commit in this process at once,
/// and on one in another process through `LISTEN outbox_<md5 of the schema>` (the table's
/// trigger notifies; the listening connection is one of the pool's); the lease is a row of `outbox_lease`, timed by the database's clock.
#[derive(Debug, Clone)]
pub struct PgOutbox {
    pool: PgPool,
    wake: Arc<Notify>,
    listener: Arc<OnceLock<AbortOnDrop>>,
}

/// Aborts the LISTEN task when the last outbox handle goes.
#[derive(Debug)]
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Listens for the outbox trigger's notifications and wakes the relay; reconnects after a
/// lost connection, waking once (a commit may have happened meanwhile).
async fn listen_for_events(pool: PgPool, wake: Weak<Notify>) {
    let mut failures = 0u32;
    loop {
        let listened = async {
            // The channel the table's trigger notifies (see the outbox migration).
            let channel: String = sqlx::query_scalar("SELECT 'outbox_' || md5(current_schema())")
                .fetch_one(&pool)
                .await?;
            let mut listener = PgListener::connect_with(&pool).await?;
            listener.listen(&channel).await?;
            Ok::<_, sqlx::Error>(listener)
        }
        .await;
        match listened {
            Ok(mut listener) => {
                failures = 0;
                if let Some(wake) = wake.upgrade() {
                    wake.notify_one();
                }
                loop {
                    match listener.try_recv().await {
                        Ok(Some(_)) => match wake.upgrade() {
                            Some(wake) => wake.notify_one(),
                            None => return,
                        },
                        // The connection was lost; PgListener reconnects on the next call.
                        Ok(None) => {
                            if let Some(wake) = wake.upgrade() {
                                wake.notify_one();
                            }
                        }
                        Err(error) => {
                            tracing::warn!(%error, "outbox LISTEN failed; reconnecting");
                            break;
                        }
                    }
                }
            }
            Err(error) => {
                failures = failures.saturating_add(1);
                tracing::warn!(%error, "cannot LISTEN for outbox events; the relay polls meanwhile");
            }
        }
        if wake.strong_count() == 0 || pool.is_closed() {
            return;
        }
        let pause = Duration::from_millis(200 * u64::from(failures.clamp(1, 25)));
        tokio::time::sleep(pause).await;
    }
}

#[async_trait]
impl Outbox for PgOutbox {
    async fn pending(&self, limit: usize) -> Result<Vec<OutboxEvent>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = sqlx::query(
            "SELECT id, key, subject, payload, headers::text AS headers, message_id \
             FROM outbox ORDER BY id LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter()
            .map(|row| {
                let id: i64 = row.try_get("id").map_err(backend)?;
                let payload: Vec<u8> = row.try_get("payload").map_err(backend)?;
                let headers: String = row.try_get("headers").map_err(backend)?;
                let mut message = OutgoingMessage::new(
                    row.try_get::<String, _>("subject").map_err(backend)?,
                    payload,
                );
                message.headers =
                    serde_json::from_str(&headers).map_err(|e| corrupt("outbox event", e))?;
                message.message_id = row.try_get("message_id").map_err(backend)?;
                Ok(OutboxEvent {
                    id: OutboxId::try_from(id).map_err(|e| corrupt("outbox event", e))?,
                    key: row.try_get("key").map_err(backend)?,
                    message,
                })
            })
            .collect()
    }

    async fn remove(&self, ids: &[OutboxId]) -> Result<(), StoreError> {
        let ids: Vec<i64> = ids
            .iter()
            .filter_map(|id| i64::try_from(*id).ok())
            .collect();
        // A removal lost in a database crash only publishes those events again (the broker
        // drops repeats, every consumer is idempotent): it need not wait for the disk.
        let mut tx = self.pool.begin().await.map_err(backend)?;
        sqlx::query("SET LOCAL synchronous_commit TO OFF")
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        sqlx::query("DELETE FROM outbox WHERE id = ANY($1)")
            .bind(ids)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(())
    }

    async fn changed(&self) {
        self.listener.get_or_init(|| {
            AbortOnDrop(tokio::spawn(listen_for_events(
                self.pool.clone(),
                Arc::downgrade(&self.wake),
            )))
        });
        self.wake.notified().await;
    }

    async fn lease(&self, holder: &str, ttl: Duration) -> Result<bool, StoreError> {
        let granted: Option<String> = sqlx::query_scalar(
            "INSERT INTO outbox_lease (name, holder, expires_at) \
             VALUES ('relay', $1, clock_timestamp() + make_interval(secs => $2)) \
             ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at \
             WHERE outbox_lease.holder = EXCLUDED.holder OR outbox_lease.expires_at < clock_timestamp() \
             RETURNING holder",
        )
        .bind(holder)
        .bind(ttl.as_secs_f64())
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        Ok(granted.is_some())
    }
}
