//! Payments in PostgreSQL: one open attempt per order, a charge's events in the charge's transaction.

#[allow(clippy::wildcard_imports)]
use super::*;

/// Payments in PostgreSQL: the one-open-attempt-per-order rule is a partial unique index; a
/// charge's events are written to the outbox in the charge's transaction.
#[derive(Debug, Clone)]
pub struct PgPaymentStore {
    pub(super) pool: PgPool,
    pub(super) wake: Arc<Notify>,
}

macro_rules! payment_columns {
    () => {
        "id, order_id, amount_cents, status, source, idempotency_key, charge_id, failure, version"
    };
}

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
        let query = sqlx::query(concat!(
            "SELECT ",
            payment_columns!(),
            " FROM payments WHERE id = $1 FOR UPDATE"
        ));
        let payment = by_id(query, id, &mut *tx, "payment", payment_of).await?;
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
        let query = sqlx::query(concat!(
            "SELECT ",
            payment_columns!(),
            " FROM payments WHERE id = $1"
        ));
        by_id(query, id, &self.pool, "payment", payment_of).await
    }

    async fn for_order(&self, order_id: Id) -> Result<Vec<Payment>, StoreError> {
        let query = sqlx::query(concat!(
            "SELECT ",
            payment_columns!(),
            " FROM payments WHERE order_id = $1 ORDER BY seq"
        ));
        rows(query.bind(order_id.to_string()), &self.pool, payment_of).await
    }

    async fn pending(&self, limit: usize) -> Result<Vec<Payment>, StoreError> {
        let query = sqlx::query(concat!(
            "SELECT ",
            payment_columns!(),
            " FROM payments WHERE status = 'pending' ORDER BY seq LIMIT $1"
        ));
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        rows(query.bind(limit), &self.pool, payment_of).await
    }
}
