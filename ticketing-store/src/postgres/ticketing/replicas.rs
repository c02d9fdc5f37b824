//! The ticketing system's typed replica tables: one store generic over the record, on the
//! backend's one versioned-write helper.

use std::marker::PhantomData;

use sqlx::postgres::PgArguments;
use sqlx::query::Query;

#[allow(clippy::wildcard_imports)]
use super::*;

/// A replica record of the ticketing system kept in a typed table (`id`, its columns,
/// `version`): how a row decodes and how its columns bind.
pub trait TypedReplica: ticketing_core::Replica<Id = Id> {
    /// The table.
    const TABLE: &'static str;
    /// The columns besides `id` and `version`, in binding order.
    const COLUMNS: &'static [&'static str];
    /// What the record is called in errors.
    const NAME: &'static str;
    /// The record of a row holding `id`, the columns and `version`, each named with `prefix`.
    fn decode(row: &PgRow, prefix: &str) -> Result<Self, StoreError>;
    /// Binds the columns, in [`COLUMNS`](Self::COLUMNS) order.
    fn bind<'q>(&self, q: Query<'q, Postgres, PgArguments>) -> Query<'q, Postgres, PgArguments>;
}

/// The column `name` of a row whose columns carry `prefix` (a join's `t_`); no copy without one.
fn column<'a>(prefix: &str, name: &'a str) -> std::borrow::Cow<'a, str> {
    if prefix.is_empty() {
        std::borrow::Cow::Borrowed(name)
    } else {
        std::borrow::Cow::Owned(format!("{prefix}{name}"))
    }
}

/// Replicas of `R` in its typed table.
#[derive(Debug)]
pub struct PgTypedReplicaStore<R> {
    pool: PgPool,
    sql: Arc<VersionedSql>,
    find: Arc<str>,
    record: PhantomData<fn() -> R>,
}

impl<R> Clone for PgTypedReplicaStore<R> {
    fn clone(&self) -> Self {
        PgTypedReplicaStore {
            pool: self.pool.clone(),
            sql: self.sql.clone(),
            find: self.find.clone(),
            record: PhantomData,
        }
    }
}

impl<R: TypedReplica> PgTypedReplicaStore<R> {
    pub(super) fn new(pool: PgPool) -> Self {
        let columns: Vec<(&str, &str)> = R::COLUMNS.iter().map(|c| (*c, "")).collect();
        PgTypedReplicaStore {
            pool,
            sql: Arc::new(VersionedSql::new(R::TABLE, &columns)),
            find: Arc::from(format!(
                "SELECT id, {}, version FROM {} WHERE id = $1",
                R::COLUMNS.join(", "),
                R::TABLE
            )),
            record: PhantomData,
        }
    }
}

#[async_trait]
impl<R: TypedReplica> ReplicaStore<R> for PgTypedReplicaStore<R> {
    async fn find(&self, id: &Id) -> Result<Option<R>, StoreError> {
        let query = sqlx::query(sqlx::AssertSqlSafe(self.find.clone()));
        row(query.bind(id.to_string()), &self.pool, |found| {
            R::decode(found, "")
        })
        .await
    }

    async fn apply(&self, record: &R) -> Result<(), StoreError> {
        let id = record.id().to_string();
        let version = record.version();
        self.sql
            .apply(
                &self.pool,
                ReplicaStart::FromFirst,
                R::NAME,
                &id,
                version,
                |q| record.bind(q),
            )
            .await
    }
}

/// The payments service's replica of orders in PostgreSQL.
pub type PgPayableOrderStore = PgTypedReplicaStore<PayableOrder>;

impl TypedReplica for PayableOrder {
    const TABLE: &'static str = "payable_orders";
    const COLUMNS: &'static [&'static str] = &["user_id", "price_cents", "status"];
    const NAME: &'static str = "order";

    fn decode(row: &PgRow, p: &str) -> Result<Self, StoreError> {
        let c = |name| column(p, name);
        Ok(PayableOrder {
            id: id_of(row, &c("id"), Self::NAME)?,
            user_id: id_of(row, &c("user_id"), Self::NAME)?,
            price: price_of(row, &c("price_cents"), Self::NAME)?,
            status: status_of(row, &c("status"), Self::NAME)?,
            version: version_of(row, &c("version"), Self::NAME)?,
        })
    }

    fn bind<'q>(&self, q: Query<'q, Postgres, PgArguments>) -> Query<'q, Postgres, PgArguments> {
        q.bind(self.user_id.to_string())
            .bind(cents(self.price))
            .bind(self.status.as_str())
    }
}

/// The replica of orders in PostgreSQL.
pub type PgOrderReplicaStore = PgTypedReplicaStore<OrderReplica>;

impl TypedReplica for OrderReplica {
    const TABLE: &'static str = "order_replicas";
    const COLUMNS: &'static [&'static str] = &["ticket_id", "status"];
    const NAME: &'static str = "order replica";

    fn decode(row: &PgRow, p: &str) -> Result<Self, StoreError> {
        let c = |name| column(p, name);
        Ok(OrderReplica {
            id: id_of(row, &c("id"), Self::NAME)?,
            ticket_id: id_of(row, &c("ticket_id"), Self::NAME)?,
            status: status_of(row, &c("status"), Self::NAME)?,
            version: version_of(row, &c("version"), Self::NAME)?,
        })
    }

    fn bind<'q>(&self, q: Query<'q, Postgres, PgArguments>) -> Query<'q, Postgres, PgArguments> {
        q.bind(self.ticket_id.to_string())
            .bind(self.status.as_str())
    }
}

/// The replica of tickets in PostgreSQL.
pub type PgTicketReplicaStore = PgTypedReplicaStore<TicketReplica>;

impl TypedReplica for TicketReplica {
    const TABLE: &'static str = "ticket_replicas";
    const COLUMNS: &'static [&'static str] = &["title", "price_cents"];
    const NAME: &'static str = "ticket replica";

    fn decode(row: &PgRow, p: &str) -> Result<Self, StoreError> {
        let c = |name| column(p, name);
        Ok(TicketReplica {
            id: id_of(row, &c("id"), Self::NAME)?,
            title: row.try_get(&*c("title")).map_err(backend)?,
            price: price_of(row, &c("price_cents"), Self::NAME)?,
            version: version_of(row, &c("version"), Self::NAME)?,
        })
    }

    fn bind<'q>(&self, q: Query<'q, Postgres, PgArguments>) -> Query<'q, Postgres, PgArguments> {
        q.bind(self.title.clone()).bind(cents(self.price))
    }
}
