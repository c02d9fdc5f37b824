//! Tickets in PostgreSQL: versioned updates, pages of unreserved tickets, the listener's change with its order replica.

#[allow(clippy::wildcard_imports)]
use super::*;

/// Tickets in PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgTicketStore {
    pub(super) pool: PgPool,
    pub(super) wake: Arc<Notify>,
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
        let query = sqlx::query(concat!(
            "SELECT ",
            ticket_columns!(),
            " FROM tickets WHERE id = $1"
        ));
        by_id(query, id, &self.pool, "ticket", ticket_of).await
    }

    async fn list_unreserved(&self) -> Result<Vec<Ticket>, StoreError> {
        let query = sqlx::query(concat!(
            "SELECT ",
            ticket_columns!(),
            " FROM tickets WHERE order_id IS NULL ORDER BY seq"
        ));
        rows(query, &self.pool, ticket_of).await
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
        let query = sqlx::query(concat!(
            "SELECT ",
            ticket_columns!(),
            " FROM tickets WHERE order_id IS NULL AND seq < $1 ORDER BY seq DESC LIMIT $2"
        ));
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        rows(query.bind(before).bind(limit), &self.pool, ticket_of).await
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
        let events = announce(&next)?;
        if events.is_empty() {
            let mut conn = self.pool.acquire().await.map_err(backend)?;
            return self.write(&mut conn, ticket).await;
        }
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let updated = self.write(&mut tx, ticket).await?;
        // Encoded once: the stored ticket is the one predicted, unless the row held fields the
        // update does not write (its seller) that differ from the caller's copy.
        let events = if updated == next {
            events
        } else {
            announce(&updated)?
        };
        commit_announcing(tx, &self.wake, &outbox_key("ticket", updated.id), events).await?;
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
        let query = sqlx::query(concat!(
            "UPDATE tickets SET title = $2, price_cents = $3, order_id = $4, version = version + 1 \
             WHERE id = $1 AND version = $5 RETURNING ",
            ticket_columns!()
        ))
        .bind(ticket.id.to_string())
        .bind(&ticket.title)
        .bind(cents(ticket.price))
        .bind(ticket.order_id.map(|id| id.to_string()))
        .bind(db_version(ticket.version)?);
        match row(query, &mut *tx, ticket_of).await? {
            Some(updated) => Ok(updated),
            None if ticket_exists(&self.pool, ticket.id).await? => {
                Err(StoreError::conflict("ticket", ticket.id, ticket.version))
            }
            None => Err(StoreError::not_found("ticket", ticket.id)),
        }
    }
}
