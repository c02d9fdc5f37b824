//! Orders in PostgreSQL, joined with the ticket replica; reservation is a partial unique index.

#[allow(clippy::wildcard_imports)]
use super::*;

/// Orders in PostgreSQL, joined with the ticket replica.
#[derive(Debug, Clone)]
pub struct PgOrderStore {
    pub(super) pool: PgPool,
    pub(super) wake: Arc<Notify>,
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
        ticket: TicketReplica::decode(row, "t_")?,
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
        let query = sqlx::query(concat!(
            order_select!(),
            " FROM orders o JOIN ticket_replicas t ON t.id = o.ticket_id WHERE o.id = $1"
        ));
        by_id(query, id, &self.pool, "order", order_of).await
    }

    async fn list_for_user(&self, user_id: Id) -> Result<Vec<Order>, StoreError> {
        let query = sqlx::query(concat!(
            order_select!(),
            " FROM orders o JOIN ticket_replicas t ON t.id = o.ticket_id \
             WHERE o.user_id = $1 ORDER BY o.seq"
        ));
        rows(query.bind(user_id.to_string()), &self.pool, order_of).await
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
        let query = sqlx::query(concat!(
            "WITH o AS (UPDATE orders SET status = $2, version = version + 1 \
                        WHERE id = $1 AND version = $3 RETURNING *) ",
            order_select!(),
            " FROM o JOIN ticket_replicas t ON t.id = o.ticket_id"
        ))
        .bind(id.to_string())
        .bind(status.as_str())
        .bind(db_version(expected_version)?);
        let changed = row(query, &mut *tx, order_of).await?.ok_or_else(conflict)?;
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
