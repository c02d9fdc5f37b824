//! The outbox in PostgreSQL: `append` inside the caller's transaction, and `PgOutbox` for the relay (LISTEN/NOTIFY wake-ups, a lease row).

#[allow(clippy::wildcard_imports)]
use super::*;

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

/// The outbox of one schema: the `outbox` table that [`append`] (and the ticketing stores)
/// write in their transactions. [`changed`](Outbox::changed) completes on a commit in this process at once,
/// and on one in another process through `LISTEN outbox_<md5 of the schema>` (the table's
/// trigger notifies; the listening connection is one of the pool's); the lease is a row of `outbox_lease`, timed by the database's clock.
#[derive(Debug, Clone)]
pub struct PgOutbox {
    pub(super) pool: PgPool,
    pub(super) wake: Arc<Notify>,
    pub(super) listener: Arc<OnceLock<AbortOnDrop>>,
}

/// Aborts the LISTEN task when the last outbox handle goes.
#[derive(Debug)]
pub(super) struct AbortOnDrop(tokio::task::JoinHandle<()>);

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

/// An outbox row as the event the relay publishes.
fn outbox_event_of(row: &PgRow) -> Result<OutboxEvent, StoreError> {
    let id: i64 = row.try_get("id").map_err(backend)?;
    let payload: Vec<u8> = row.try_get("payload").map_err(backend)?;
    let headers: String = row.try_get("headers").map_err(backend)?;
    let mut message = OutgoingMessage::new(
        row.try_get::<String, _>("subject").map_err(backend)?,
        payload,
    );
    message.headers = serde_json::from_str(&headers).map_err(|e| corrupt("outbox event", e))?;
    message.message_id = row.try_get("message_id").map_err(backend)?;
    Ok(OutboxEvent {
        id: OutboxId::try_from(id).map_err(|e| corrupt("outbox event", e))?,
        key: row.try_get("key").map_err(backend)?,
        message,
    })
}

#[async_trait]
impl Outbox for PgOutbox {
    /// `NOTIFY` reaches the relays of every process.
    fn wakes_other_processes(&self) -> bool {
        true
    }

    async fn pending(&self, limit: usize) -> Result<Vec<OutboxEvent>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let query = sqlx::query(
            "SELECT id, key, subject, payload, headers::text AS headers, message_id \
             FROM outbox ORDER BY id LIMIT $1",
        );
        rows(query.bind(limit), &self.pool, outbox_event_of).await
    }

    async fn remove(&self, ids: &[OutboxId]) -> Result<(), StoreError> {
        let ids: Vec<i64> = ids
            .iter()
            .filter_map(|id| i64::try_from(*id).ok())
            .collect();
        if ids.is_empty() {
            return Ok(());
        }
        // A removal lost in a database crash only publishes those events again (the broker
        // drops repeats, every consumer is idempotent): it need not wait for the disk. One
        // round trip instead of four (begin, set, delete, commit): the setting and the delete go
        // as one simple query, which PostgreSQL runs as one implicit transaction (rolled back
        // whole on an error), the ids written as the integers they are.
        let ids = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
        let statement =
            format!("SET LOCAL synchronous_commit TO OFF; DELETE FROM outbox WHERE id IN ({ids})");
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
            .execute(&self.pool)
            .await
            .map_err(backend)?;
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
