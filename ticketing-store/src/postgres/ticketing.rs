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

use super::{PgDatabase, VersionedSql, append, backend, corrupt, db_version, violation};
use ticketing_core::ticketing::Price;
use ticketing_core::ticketing::payment::{
    Outcome, PayableOrder, Payment, PaymentStatus, PaymentStore,
};
use ticketing_core::ticketing::reservation::OrderStatus;
use ticketing_core::ticketing::store::{
    Announce, NewOrder, Order, OrderReplica, OrderStore, ReplicaStore, ReservationError,
    StoreError, Ticket, TicketReplica, TicketStore, User, UserStore, outbox_key,
};
use ticketing_core::version::ReplicaStart;
use ticketing_core::{Id, OutgoingMessage, Version};

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

/// Users in PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgUserStore {
    pool: PgPool,
}

fn user_of(row: &PgRow) -> Result<User, StoreError> {
    Ok(User {
        id: id_of(row, "id", "user")?,
        email: row.try_get("email").map_err(backend)?,
        password_hash: row.try_get("password_hash").map_err(backend)?,
    })
}

#[async_trait]
impl UserStore for PgUserStore {
    async fn create(&self, user: User) -> Result<User, StoreError> {
        let result =
            sqlx::query("INSERT INTO users (id, email, password_hash) VALUES ($1, $2, $3)")
                .bind(user.id.to_string())
                .bind(&user.email)
                .bind(&user.password_hash)
                .execute(&self.pool)
                .await;
        match result {
            Ok(_) => Ok(user),
            Err(e) => Err(match violation(&e) {
                Some((ErrorKind::UniqueViolation, constraint))
                    if constraint == "users_email_key" =>
                {
                    StoreError::AlreadyExists {
                        entity: "user",
                        key: user.email,
                    }
                }
                Some((ErrorKind::UniqueViolation, _)) => StoreError::AlreadyExists {
                    entity: "user",
                    key: user.id.to_string(),
                },
                _ => backend(e),
            }),
        }
    }

    async fn find_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        sqlx::query("SELECT id, email, password_hash FROM users WHERE lower(email) = lower($1)")
            .bind(email)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .as_ref()
            .map(user_of)
            .transpose()
    }

    async fn get(&self, id: Id) -> Result<User, StoreError> {
        let row = sqlx::query("SELECT id, email, password_hash FROM users WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .ok_or_else(|| StoreError::not_found("user", id))?;
        user_of(&row)
    }
}

/// Tickets in PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgTicketStore {
    pool: PgPool,
    wake: Arc<Notify>,
}

macro_rules! ticket_columns {
    () => {
        "id, title, price_cents, user_id, version, order_id"
    };
}

fn ticket_of(row: &PgRow) -> Result<Ticket, StoreError> {
    Ok(Ticket {
        id: id_of(row, "id", "ticket")?,
        title: row.try_get("title").map_err(backend)?,
        price: price_of(row, "price_cents", "ticket")?,
        user_id: id_of(row, "user_id", "ticket")?,
        version: version_of(row, "version", "ticket")?,
        order_id: optional_id_of(row, "order_id", "ticket")?,
    })
}

async fn ticket_exists(pool: &PgPool, id: Id) -> Result<bool, StoreError> {
    sqlx::query_scalar::<Postgres, bool>("SELECT EXISTS (SELECT 1 FROM tickets WHERE id = $1)")
        .bind(id.to_string())
        .fetch_one(pool)
        .await
        .map_err(backend)
}

#[async_trait]
impl TicketStore for PgTicketStore {
    async fn create_announcing(
        &self,
        ticket: Ticket,
        announce: Announce<'_, Ticket>,
    ) -> Result<Ticket, StoreError> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let result = sqlx::query(
            "INSERT INTO tickets (id, title, price_cents, user_id, version, order_id) \
             VALUES ($1, $2, $3, $4, 0, $5)",
        )
        .bind(ticket.id.to_string())
        .bind(&ticket.title)
        .bind(cents(ticket.price))
        .bind(ticket.user_id.to_string())
        .bind(ticket.order_id.map(|id| id.to_string()))
        .execute(&mut *tx)
        .await;
        match result {
            Ok(_) => {}
            Err(e) if matches!(violation(&e), Some((ErrorKind::UniqueViolation, _))) => {
                return Err(StoreError::AlreadyExists {
                    entity: "ticket",
                    key: ticket.id.to_string(),
                });
            }
            Err(e) => return Err(backend(e)),
        }
        let created = Ticket {
            version: 0,
            ..ticket
        };
        let events = announce(&created)?;
        commit_announcing(tx, &self.wake, &outbox_key("ticket", created.id), events).await?;
        Ok(created)
    }

    async fn get(&self, id: Id) -> Result<Ticket, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            ticket_columns!(),
            " FROM tickets WHERE id = $1"
        ))
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?
        .ok_or_else(|| StoreError::not_found("ticket", id))?;
        ticket_of(&row)
    }

    async fn list_unreserved(&self) -> Result<Vec<Ticket>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            ticket_columns!(),
            " FROM tickets WHERE order_id IS NULL ORDER BY seq"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?
        .iter()
        .map(ticket_of)
        .collect()
    }

    async fn list_unreserved_page(
        &self,
        after: Option<Id>,
        limit: usize,
    ) -> Result<Vec<Ticket>, StoreError> {
        let before: i64 = match after {
            Some(id) => sqlx::query_scalar("SELECT seq FROM tickets WHERE id = $1")
                .bind(id.to_string())
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)?
                .ok_or_else(|| StoreError::not_found("ticket", id))?,
            None => i64::MAX,
        };
        sqlx::query(concat!(
            "SELECT ",
            ticket_columns!(),
            " FROM tickets WHERE order_id IS NULL AND seq < $1 ORDER BY seq DESC LIMIT $2"
        ))
        .bind(before)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?
        .iter()
        .map(ticket_of)
        .collect()
    }

    async fn update_announcing(
        &self,
        ticket: &Ticket,
        announce: Announce<'_, Ticket>,
    ) -> Result<Ticket, StoreError> {
        // The ticket as the update stores it is known before it: a change that announces
        // nothing is one statement, with no transaction around it.
        let next = Ticket {
            version: ticket.version + 1,
            ..ticket.clone()
        };
        if announce(&next)?.is_empty() {
            let mut conn = self.pool.acquire().await.map_err(backend)?;
            return self.write(&mut conn, ticket).await;
        }
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let updated = self.write(&mut tx, ticket).await?;
        commit_announcing(
            tx,
            &self.wake,
            &outbox_key("ticket", updated.id),
            announce(&updated)?,
        )
        .await?;
        Ok(updated)
    }

    async fn update_for_order(
        &self,
        ticket: &Ticket,
        order: &OrderReplica,
        announce: Announce<'_, Ticket>,
    ) -> Result<Ticket, StoreError> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let updated = self.write(&mut tx, ticket).await?;
        sqlx::query(
            "INSERT INTO order_replicas (id, ticket_id, status, version) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (id) DO UPDATE SET ticket_id = EXCLUDED.ticket_id, \
             status = EXCLUDED.status, version = EXCLUDED.version \
             WHERE order_replicas.version < EXCLUDED.version",
        )
        .bind(order.id.to_string())
        .bind(order.ticket_id.to_string())
        .bind(order.status.as_str())
        .bind(db_version(order.version)?)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        commit_announcing(
            tx,
            &self.wake,
            &outbox_key("ticket", updated.id),
            announce(&updated)?,
        )
        .await?;
        Ok(updated)
    }
}

impl PgTicketStore {
    /// The version-checked update of a ticket, inside `tx`.
    async fn write(&self, tx: &mut PgConnection, ticket: &Ticket) -> Result<Ticket, StoreError> {
        let row = sqlx::query(concat!(
            "UPDATE tickets SET title = $2, price_cents = $3, order_id = $4, version = version + 1 \
             WHERE id = $1 AND version = $5 RETURNING ",
            ticket_columns!()
        ))
        .bind(ticket.id.to_string())
        .bind(&ticket.title)
        .bind(cents(ticket.price))
        .bind(ticket.order_id.map(|id| id.to_string()))
        .bind(db_version(ticket.version)?)
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend)?;
        match row {
            Some(row) => ticket_of(&row),
            None if ticket_exists(&self.pool, ticket.id).await? => {
                Err(StoreError::conflict("ticket", ticket.id, ticket.version))
            }
            None => Err(StoreError::not_found("ticket", ticket.id)),
        }
    }
}

/// Payments in PostgreSQL: the one-open-attempt-per-order rule is a partial unique index; a
/// charge's events are written to the outbox in the charge's transaction.
#[derive(Debug, Clone)]
pub struct PgPaymentStore {
    pool: PgPool,
    wake: Arc<Notify>,
}

const PAYMENT_COLUMNS: &str =
    "id, order_id, amount_cents, status, source, idempotency_key, charge_id, failure, version";

fn payment_of(row: &PgRow) -> Result<Payment, StoreError> {
    let status: String = row.try_get("status").map_err(backend)?;
    Ok(Payment {
        id: id_of(row, "id", "payment")?,
        order_id: id_of(row, "order_id", "payment")?,
        amount: price_of(row, "amount_cents", "payment")?,
        status: PaymentStatus::parse(&status)
            .ok_or_else(|| corrupt("payment", format!("status {status:?}")))?,
        source: row.try_get("source").map_err(backend)?,
        idempotency_key: row.try_get("idempotency_key").map_err(backend)?,
        charge_id: row.try_get("charge_id").map_err(backend)?,
        failure: row.try_get("failure").map_err(backend)?,
        version: version_of(row, "version", "payment")?,
    })
}

impl PgPaymentStore {
    /// The payment, locked for the rest of `tx`, if it is in `from`; `VersionConflict` if it
    /// is not, `NotFound` if it does not exist.
    async fn locked_in(
        tx: &mut PgConnection,
        id: Id,
        from: PaymentStatus,
    ) -> Result<Payment, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {PAYMENT_COLUMNS} FROM payments WHERE id = $1 FOR UPDATE"
        )))
        .bind(id.to_string())
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend)?
        .ok_or_else(|| StoreError::not_found("payment", id))?;
        let payment = payment_of(&row)?;
        if payment.status != from {
            return Err(StoreError::conflict("payment", id, payment.version));
        }
        Ok(payment)
    }

    async fn write(tx: &mut PgConnection, payment: &Payment) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE payments SET status = $2, charge_id = $3, failure = $4, version = $5 \
             WHERE id = $1",
        )
        .bind(payment.id.to_string())
        .bind(payment.status.as_str())
        .bind(payment.charge_id.as_deref())
        .bind(payment.failure.as_deref())
        .bind(db_version(payment.version)?)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        Ok(())
    }
}

#[async_trait]
impl PaymentStore for PgPaymentStore {
    async fn begin(&self, payment: Payment) -> Result<Payment, StoreError> {
        let stored = payment.begun();
        let result = sqlx::query(
            "INSERT INTO payments \
             (id, order_id, amount_cents, status, source, idempotency_key, version) \
             VALUES ($1, $2, $3, 'pending', $4, $5, 0)",
        )
        .bind(stored.id.to_string())
        .bind(stored.order_id.to_string())
        .bind(cents(stored.amount))
        .bind(&stored.source)
        .bind(&stored.idempotency_key)
        .execute(&self.pool)
        .await;
        match result {
            Ok(_) => Ok(stored),
            Err(e) => Err(match violation(&e) {
                Some((ErrorKind::UniqueViolation, constraint))
                    if constraint == "payments_one_open_per_order" =>
                {
                    StoreError::AlreadyExists {
                        entity: "payment",
                        key: stored.order_id.to_string(),
                    }
                }
                Some((ErrorKind::UniqueViolation, _)) => StoreError::AlreadyExists {
                    entity: "payment",
                    key: stored.id.to_string(),
                },
                _ => backend(e),
            }),
        }
    }

    async fn settle_announcing(
        &self,
        id: Id,
        outcome: Outcome,
        announce: Announce<'_, Payment>,
    ) -> Result<Payment, StoreError> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let settled = Self::locked_in(&mut tx, id, PaymentStatus::Pending)
            .await?
            .settled(outcome);
        let events = settled.announced(announce)?;
        Self::write(&mut tx, &settled).await?;
        commit_announcing(tx, &self.wake, &outbox_key("payment", id), events).await?;
        Ok(settled)
    }

    async fn refund(&self, id: Id) -> Result<Payment, StoreError> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let refunded = Self::locked_in(&mut tx, id, PaymentStatus::Succeeded)
            .await?
            .refunded();
        Self::write(&mut tx, &refunded).await?;
        tx.commit().await.map_err(backend)?;
        Ok(refunded)
    }

    async fn get(&self, id: Id) -> Result<Payment, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {PAYMENT_COLUMNS} FROM payments WHERE id = $1"
        )))
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?
        .as_ref()
        .map(payment_of)
        .transpose()?
        .ok_or_else(|| StoreError::not_found("payment", id))
    }

    async fn for_order(&self, order_id: Id) -> Result<Vec<Payment>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {PAYMENT_COLUMNS} FROM payments WHERE order_id = $1 ORDER BY seq"
        )))
        .bind(order_id.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?
        .iter()
        .map(payment_of)
        .collect()
    }

    async fn pending(&self, limit: usize) -> Result<Vec<Payment>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {PAYMENT_COLUMNS} FROM payments WHERE status = 'pending' ORDER BY seq LIMIT $1"
        )))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?
        .iter()
        .map(payment_of)
        .collect()
    }
}

/// The typed replica tables of the ticketing system: each writes through the one
/// [`VersionedSql`] helper of this backend, so the rule is written once.
fn replica_sql(table: &str, columns: &[(&str, &str)]) -> Arc<VersionedSql> {
    Arc::new(VersionedSql::new(table, columns))
}

/// The payments service's replica of orders in PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgPayableOrderStore {
    pool: PgPool,
    sql: Arc<VersionedSql>,
}

impl PgPayableOrderStore {
    fn new(pool: PgPool) -> Self {
        let columns = [("user_id", ""), ("price_cents", ""), ("status", "")];
        PgPayableOrderStore {
            pool,
            sql: replica_sql("payable_orders", &columns),
        }
    }
}

#[async_trait]
impl ReplicaStore<PayableOrder> for PgPayableOrderStore {
    async fn find(&self, id: &Id) -> Result<Option<PayableOrder>, StoreError> {
        sqlx::query(
            "SELECT id, user_id, price_cents, status, version FROM payable_orders WHERE id = $1",
        )
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?
        .as_ref()
        .map(|row| {
            Ok(PayableOrder {
                id: id_of(row, "id", "order")?,
                user_id: id_of(row, "user_id", "order")?,
                price: price_of(row, "price_cents", "order")?,
                status: status_of(row, "status", "order")?,
                version: version_of(row, "version", "order")?,
            })
        })
        .transpose()
    }

    async fn apply(&self, order: &PayableOrder) -> Result<(), StoreError> {
        let id = order.id.to_string();
        self.sql
            .apply(
                &self.pool,
                ReplicaStart::FromFirst,
                "order",
                &id,
                order.version,
                |q| {
                    q.bind(order.user_id.to_string())
                        .bind(cents(order.price))
                        .bind(order.status.as_str())
                },
            )
            .await
    }
}

/// The replica of orders in PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgOrderReplicaStore {
    pool: PgPool,
    sql: Arc<VersionedSql>,
}

impl PgOrderReplicaStore {
    fn new(pool: PgPool) -> Self {
        PgOrderReplicaStore {
            pool,
            sql: replica_sql("order_replicas", &[("ticket_id", ""), ("status", "")]),
        }
    }
}

fn order_replica_of(row: &PgRow) -> Result<OrderReplica, StoreError> {
    Ok(OrderReplica {
        id: id_of(row, "id", "order replica")?,
        ticket_id: id_of(row, "ticket_id", "order replica")?,
        status: status_of(row, "status", "order replica")?,
        version: version_of(row, "version", "order replica")?,
    })
}

#[async_trait]
impl ReplicaStore<OrderReplica> for PgOrderReplicaStore {
    async fn find(&self, id: &Id) -> Result<Option<OrderReplica>, StoreError> {
        sqlx::query("SELECT id, ticket_id, status, version FROM order_replicas WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .as_ref()
            .map(order_replica_of)
            .transpose()
    }

    async fn apply(&self, order: &OrderReplica) -> Result<(), StoreError> {
        let id = order.id.to_string();
        self.sql
            .apply(
                &self.pool,
                ReplicaStart::FromFirst,
                "order replica",
                &id,
                order.version,
                |q| {
                    q.bind(order.ticket_id.to_string())
                        .bind(order.status.as_str())
                },
            )
            .await
    }
}

/// The replica of tickets in PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgTicketReplicaStore {
    pool: PgPool,
    sql: Arc<VersionedSql>,
}

impl PgTicketReplicaStore {
    fn new(pool: PgPool) -> Self {
        PgTicketReplicaStore {
            pool,
            sql: replica_sql("ticket_replicas", &[("title", ""), ("price_cents", "")]),
        }
    }
}

fn ticket_replica_of(row: &PgRow, prefix: &str) -> Result<TicketReplica, StoreError> {
    let column = |name: &str| format!("{prefix}{name}");
    Ok(TicketReplica {
        id: id_of(row, &column("id"), "ticket replica")?,
        title: row.try_get(column("title").as_str()).map_err(backend)?,
        price: price_of(row, &column("price_cents"), "ticket replica")?,
        version: version_of(row, &column("version"), "ticket replica")?,
    })
}

#[async_trait]
impl ReplicaStore<TicketReplica> for PgTicketReplicaStore {
    async fn find(&self, id: &Id) -> Result<Option<TicketReplica>, StoreError> {
        sqlx::query("SELECT id, title, price_cents, version FROM ticket_replicas WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .as_ref()
            .map(|row| ticket_replica_of(row, ""))
            .transpose()
    }

    async fn apply(&self, ticket: &TicketReplica) -> Result<(), StoreError> {
        let id = ticket.id.to_string();
        self.sql
            .apply(
                &self.pool,
                ReplicaStart::FromFirst,
                "ticket replica",
                &id,
                ticket.version,
                |q| q.bind(ticket.title.clone()).bind(cents(ticket.price)),
            )
            .await
    }
}

/// Orders in PostgreSQL, joined with the ticket replica.
#[derive(Debug, Clone)]
pub struct PgOrderStore {
    pool: PgPool,
    wake: Arc<Notify>,
}

/// Selects an order row `o` joined with its ticket `t`; the FROM clause follows.
macro_rules! order_select {
    () => {
        "SELECT o.id, o.user_id, o.status, o.expires_at, o.version, \
         t.id AS t_id, t.title AS t_title, t.price_cents AS t_price_cents, t.version AS t_version"
    };
}

fn order_of(row: &PgRow) -> Result<Order, StoreError> {
    Ok(Order {
        id: id_of(row, "id", "order")?,
        user_id: id_of(row, "user_id", "order")?,
        status: status_of(row, "status", "order")?,
        expires_at: row
            .try_get::<DateTime<Utc>, _>("expires_at")
            .map_err(backend)?,
        version: version_of(row, "version", "order")?,
        ticket: ticket_replica_of(row, "t_")?,
    })
}

#[async_trait]
impl OrderStore for PgOrderStore {
    async fn reserve_announcing(
        &self,
        order: NewOrder,
        announce: Announce<'_, Order>,
    ) -> Result<Order, StoreError> {
        // The replica as it is now, read in a statement of its own: a statement that inserts
        // and joins in one snapshot can miss a replica committed while it runs (the foreign
        // key check sees it, the join does not).
        let ticket = PgTicketReplicaStore::new(self.pool.clone())
            .find(&order.ticket_id)
            .await?
            .ok_or_else(|| StoreError::not_found("ticket", order.ticket_id))?;
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let result = sqlx::query(
            "INSERT INTO orders (id, user_id, ticket_id, status, expires_at, version) \
             VALUES ($1, $2, $3, 'created', $4, 0)",
        )
        .bind(order.id.to_string())
        .bind(order.user_id.to_string())
        .bind(order.ticket_id.to_string())
        .bind(order.expires_at)
        .execute(&mut *tx)
        .await;
        match result {
            Ok(_) => {
                let created = Order {
                    id: order.id,
                    user_id: order.user_id,
                    status: OrderStatus::Created,
                    expires_at: order.expires_at,
                    version: 0,
                    ticket,
                };
                commit_announcing(
                    tx,
                    &self.wake,
                    &outbox_key("order", created.id),
                    announce(&created)?,
                )
                .await?;
                Ok(created)
            }
            Err(e) => Err(match violation(&e) {
                Some((ErrorKind::UniqueViolation, constraint))
                    if constraint == "orders_one_active_per_ticket" =>
                {
                    ReservationError::TicketReserved {
                        ticket_id: order.ticket_id,
                    }
                    .into()
                }
                Some((ErrorKind::UniqueViolation, _)) => StoreError::AlreadyExists {
                    entity: "order",
                    key: order.id.to_string(),
                },
                Some((ErrorKind::ForeignKeyViolation, _)) => {
                    StoreError::not_found("ticket", order.ticket_id)
                }
                _ => backend(e),
            }),
        }
    }

    async fn get(&self, id: Id) -> Result<Order, StoreError> {
        let row = sqlx::query(concat!(
            order_select!(),
            " FROM orders o JOIN ticket_replicas t ON t.id = o.ticket_id WHERE o.id = $1"
        ))
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?
        .ok_or_else(|| StoreError::not_found("order", id))?;
        order_of(&row)
    }

    async fn list_for_user(&self, user_id: Id) -> Result<Vec<Order>, StoreError> {
        sqlx::query(concat!(
            order_select!(),
            " FROM orders o JOIN ticket_replicas t ON t.id = o.ticket_id \
             WHERE o.user_id = $1 ORDER BY o.seq"
        ))
        .bind(user_id.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?
        .iter()
        .map(order_of)
        .collect()
    }

    async fn set_status_announcing(
        &self,
        id: Id,
        expected_version: Version,
        status: OrderStatus,
        announce: Announce<'_, Order>,
    ) -> Result<Order, StoreError> {
        let current = sqlx::query("SELECT status, version FROM orders WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .ok_or_else(|| StoreError::not_found("order", id))?;
        let conflict = || StoreError::conflict("order", id, expected_version);
        if version_of(&current, "version", "order")? != expected_version {
            return Err(conflict());
        }
        status_of(&current, "status", "order")?.transition(status)?;
        // The version check in the UPDATE makes the read above safe: if the order moved on in
        // between, nothing is written.
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let row = sqlx::query(concat!(
            "WITH o AS (UPDATE orders SET status = $2, version = version + 1 \
                        WHERE id = $1 AND version = $3 RETURNING *) ",
            order_select!(),
            " FROM o JOIN ticket_replicas t ON t.id = o.ticket_id"
        ))
        .bind(id.to_string())
        .bind(status.as_str())
        .bind(db_version(expected_version)?)
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend)?;
        let changed = row
            .as_ref()
            .map(order_of)
            .transpose()?
            .ok_or_else(conflict)?;
        commit_announcing(
            tx,
            &self.wake,
            &outbox_key("order", id),
            announce(&changed)?,
        )
        .await?;
        Ok(changed)
    }

    async fn is_reserved(&self, ticket_id: Id) -> Result<bool, StoreError> {
        sqlx::query_scalar::<Postgres, bool>(
            "SELECT EXISTS (SELECT 1 FROM orders WHERE ticket_id = $1 AND status <> 'cancelled')",
        )
        .bind(ticket_id.to_string())
        .fetch_one(&self.pool)
        .await
        .map_err(backend)
    }
}
