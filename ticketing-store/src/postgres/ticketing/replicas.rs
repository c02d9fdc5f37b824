//! The ticketing system's typed replica tables, on the backend's one versioned-write helper.

#[allow(clippy::wildcard_imports)]
use super::*;

/// The typed replica tables of the ticketing system: each writes through the one
/// [`VersionedSql`] helper of this backend, so the rule is written once.
fn replica_sql(table: &str, columns: &[(&str, &str)]) -> Arc<VersionedSql> {
    Arc::new(VersionedSql::new(table, columns))
}

/// The payments service's replica of orders in PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgPayableOrderStore {
    pub(super) pool: PgPool,
    pub(super) sql: Arc<VersionedSql>,
}

impl PgPayableOrderStore {
    pub(super) fn new(pool: PgPool) -> Self {
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
    pub(super) pool: PgPool,
    pub(super) sql: Arc<VersionedSql>,
}

impl PgOrderReplicaStore {
    pub(super) fn new(pool: PgPool) -> Self {
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
    pub(super) pool: PgPool,
    pub(super) sql: Arc<VersionedSql>,
}

impl PgTicketReplicaStore {
    pub(super) fn new(pool: PgPool) -> Self {
        PgTicketReplicaStore {
            pool,
            sql: replica_sql("ticket_replicas", &[("title", ""), ("price_cents", "")]),
        }
    }
}

pub(super) fn ticket_replica_of(row: &PgRow, prefix: &str) -> Result<TicketReplica, StoreError> {
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
