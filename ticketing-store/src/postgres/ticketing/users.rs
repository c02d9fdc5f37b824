//! Users in PostgreSQL: emails unique on `lower(email)`.

#[allow(clippy::wildcard_imports)]
use super::*;

/// Users in PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgUserStore {
    pub(super) pool: PgPool,
}

fn user_of(row: &PgRow) -> Result<User, StoreError> {
    Ok(User {
        id: id_of(row, "id", "user")?,
        email: row.try_get("email").map_err(backend)?,
        password_hash: row.try_get("password_hash").map_err(backend)?,
    })
}

fn failure_count(row: &PgRow) -> Result<FailureCount, StoreError> {
    Ok(FailureCount {
        tat_ms: row.try_get("tat_ms").map_err(backend)?,
        refused_until_ms: row.try_get("refused_until_ms").map_err(backend)?,
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
        let query = sqlx::query(
            "SELECT id, email, password_hash FROM users WHERE lower(email) = lower($1)",
        );
        row(query.bind(email), &self.pool, user_of).await
    }

    async fn get(&self, id: Id) -> Result<User, StoreError> {
        let query = sqlx::query("SELECT id, email, password_hash FROM users WHERE id = $1");
        by_id(query, id, &self.pool, "user", user_of).await
    }

    async fn sign_in_failed(
        &self,
        key: &str,
        limit: FailureLimit,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let now_ms = now.timestamp_millis();
        let mut tx = self.pool.begin().await.map_err(backend)?;
        sqlx::query(
            "INSERT INTO sign_in_failures (key, tat_ms, refused_until_ms) VALUES ($1, 0, 0) \
             ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        // The row locked until the commit: concurrent failures of one key count one by one.
        let row = sqlx::query(
            "SELECT tat_ms, refused_until_ms FROM sign_in_failures WHERE key = $1 FOR UPDATE",
        )
        .bind(key)
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?;
        let before = failure_count(&row)?;
        let after = limit.fail(before, now_ms);
        sqlx::query(
            "UPDATE sign_in_failures SET tat_ms = $2, refused_until_ms = $3 WHERE key = $1",
        )
        .bind(key)
        .bind(after.tat_ms)
        .bind(after.refused_until_ms)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        // Now and then, the keys whose failures have all come back go.
        if now_ms % 64 == 0 {
            sqlx::query("DELETE FROM sign_in_failures WHERE tat_ms < $1 AND refused_until_ms < $1")
                .bind(now_ms)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(FailureLimit::refusal(before, after))
    }

    async fn sign_in_refused(
        &self,
        keys: &[String],
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let query = sqlx::query(
            "SELECT tat_ms, refused_until_ms FROM sign_in_failures WHERE key = ANY($1)",
        );
        let counts = rows(query.bind(keys), &self.pool, failure_count).await?;
        Ok(latest_refusal(counts, now))
    }
}
