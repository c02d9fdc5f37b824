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
