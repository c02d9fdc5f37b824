//! The ticketing system's stores in PostgreSQL (feature `ticketing`): their tables come from
//! [`TICKETING_MIGRATOR`], run by [`PgDatabase::migrate_ticketing`].
//!
//! Ids are stored as the API's 24-hex strings, prices as integer cents, timestamps as
//! `timestamptz`. Versions are checked by the `UPDATE ... WHERE version = $n` itself; emails
//! are unique on `lower(email)` and the one-active-order-per-ticket rule is a partial unique
//! index, so the database, not a check-then-write, enforces both.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::error::ErrorKind;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgPool, PgRow};
use sqlx::{PgConnection, Postgres, Row, Transaction};
use tokio::sync::Notify;

use super::{
    PgDatabase, PgQuery, VersionedSql, append, backend, corrupt, db_version, row, rows, violation,
};
use ticketing_core::ticketing::Price;
use ticketing_core::ticketing::payment::{
    Outcome, PayableOrder, Payment, PaymentStatus, PaymentStore,
};
use ticketing_core::ticketing::reservation::OrderStatus;
use ticketing_core::ticketing::store::{
    Announce, FailureCount, FailureLimit, NewOrder, Order, OrderReplica, OrderStore, ReplicaStore,
    ReservationError, StoreError, Ticket, TicketReplica, TicketStore, User, UserStore,
    latest_refusal, outbox_key,
};
use ticketing_core::version::ReplicaStart;
use ticketing_core::{Id, OutgoingMessage, Version};

mod orders;
mod payments;
mod replicas;
mod tickets;
mod users;
pub use orders::PgOrderStore;
pub use payments::PgPaymentStore;
pub use replicas::{
    PgOrderReplicaStore, PgPayableOrderStore, PgTicketReplicaStore, PgTypedReplicaStore,
    TypedReplica,
};
pub use tickets::PgTicketStore;
pub use users::PgUserStore;

/// The ticketing system's migrations (`ticketing-store/migrations/ticketing/`), recorded in
/// `_sqlx_migrations` as they always were, so databases created before the SDK's migrations had
/// a table of their own upgrade in place.
pub static TICKETING_MIGRATOR: Migrator = sqlx::migrate!("./migrations/ticketing");

/// The ticketing migration that creates the outbox, as the SDK's own migration does.
const OUTBOX_MIGRATION: i64 = 20261129000001;

impl PgDatabase {
    /// Creates the ticketing tables (users, tickets, orders, payments, their replicas) and the
    /// SDK's: [`TICKETING_MIGRATOR`], then [`migrate`](Self::migrate). Only a ticketing service's
    /// schema needs them. Idempotent, and in either order: the ticketing migrations predate the
    /// SDK's and create the same outbox, so where [`connect`](Self::connect) made it first, that
    /// one migration is recorded as applied instead of run.
    pub async fn migrate_ticketing(&self) -> Result<(), StoreError> {
        let failed = |e: sqlx::migrate::MigrateError| backend(format!("migrations failed: {e}"));
        let outbox_exists: bool = sqlx::query_scalar("SELECT to_regclass('outbox') IS NOT NULL")
            .fetch_one(self.pool())
            .await
            .map_err(backend)?;
        if outbox_exists {
            // The migrations before the outbox one, and the history table with them.
            TICKETING_MIGRATOR
                .run_to(OUTBOX_MIGRATION - 1, self.pool())
                .await
                .map_err(failed)?;
            let outbox = TICKETING_MIGRATOR
                .iter()
                .find(|m| m.version == OUTBOX_MIGRATION)
                .ok_or_else(|| backend("the ticketing outbox migration is missing"))?;
            sqlx::query(
                "INSERT INTO _sqlx_migrations \
                 (version, description, success, checksum, execution_time) \
                 VALUES ($1, $2, TRUE, $3, 0) ON CONFLICT (version) DO NOTHING",
            )
            .bind(outbox.version)
            .bind(outbox.description.as_ref())
            .bind(outbox.checksum.as_ref())
            .execute(self.pool())
            .await
            .map_err(backend)?;
        }
        TICKETING_MIGRATOR.run(self.pool()).await.map_err(failed)?;
        self.migrate().await
    }

    /// Users.
    pub fn users(&self) -> PgUserStore {
        PgUserStore {
            pool: self.pool().clone(),
        }
    }

    /// Tickets (tickets service).
    pub fn tickets(&self) -> PgTicketStore {
        PgTicketStore {
            pool: self.pool().clone(),
            wake: self.wake.clone(),
        }
    }

    /// The replica of orders (tickets service).
    pub fn order_replicas(&self) -> PgOrderReplicaStore {
        PgOrderReplicaStore::new(self.pool().clone())
    }

    /// The replica of tickets (orders service).
    pub fn ticket_replicas(&self) -> PgTicketReplicaStore {
        PgTicketReplicaStore::new(self.pool().clone())
    }

    /// Orders (orders service).
    pub fn orders(&self) -> PgOrderStore {
        PgOrderStore {
            pool: self.pool().clone(),
            wake: self.wake.clone(),
        }
    }

    /// Payments (payments service).
    pub fn payments(&self) -> PgPaymentStore {
        PgPaymentStore {
            pool: self.pool().clone(),
            wake: self.wake.clone(),
        }
    }

    /// The replica of orders (payments service).
    pub fn payable_orders(&self) -> PgPayableOrderStore {
        PgPayableOrderStore::new(self.pool().clone())
    }
}

/// The `entity` with this id that `query` (its `$1` the id) finds on `executor`, decoded;
/// `NotFound` when there is none.
async fn by_id<'c, T>(
    query: PgQuery<'_>,
    id: Id,
    executor: impl sqlx::PgExecutor<'c>,
    entity: &'static str,
    decode: fn(&PgRow) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    row(query.bind(id.to_string()), executor, decode)
        .await?
        .ok_or_else(|| StoreError::not_found(entity, id))
}

fn status_of(row: &PgRow, column: &str, entity: &'static str) -> Result<OrderStatus, StoreError> {
    let text: String = row.try_get(column).map_err(backend)?;
    text.parse().map_err(|e| corrupt(entity, e))
}

/// Writes `messages` as events of the record `key` into the outbox in `tx`, commits the
/// transaction, and wakes the relay if there were any.
async fn commit_announcing(
    mut tx: Transaction<'_, Postgres>,
    wake: &Notify,
    key: &str,
    messages: Vec<OutgoingMessage>,
) -> Result<(), StoreError> {
    append(&mut tx, key, &messages).await?;
    tx.commit().await.map_err(backend)?;
    if !messages.is_empty() {
        wake.notify_one();
    }
    Ok(())
}

fn version_of(row: &PgRow, column: &str, entity: &'static str) -> Result<Version, StoreError> {
    let version: i64 = row.try_get(column).map_err(backend)?;
    u64::try_from(version).map_err(|e| corrupt(entity, e))
}

fn id_of(row: &PgRow, column: &str, entity: &'static str) -> Result<Id, StoreError> {
    let text: String = row.try_get(column).map_err(backend)?;
    Id::parse(&text).map_err(|e| corrupt(entity, e))
}

fn optional_id_of(
    row: &PgRow,
    column: &str,
    entity: &'static str,
) -> Result<Option<Id>, StoreError> {
    let text: Option<String> = row.try_get(column).map_err(backend)?;
    text.map(|t| Id::parse(&t).map_err(|e| corrupt(entity, e)))
        .transpose()
}

fn price_of(row: &PgRow, column: &str, entity: &'static str) -> Result<Price, StoreError> {
    let cents: i64 = row.try_get(column).map_err(backend)?;
    u64::try_from(cents)
        .map_err(|e| corrupt(entity, e))
        .and_then(|c| Price::from_cents(c).map_err(|e| corrupt(entity, e)))
}

fn cents(price: Price) -> i64 {
    // At most 100,000,000 cents: always fits.
    price.cents() as i64
}
