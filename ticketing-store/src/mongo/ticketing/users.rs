//! Users in MongoDB: emails unique through an index on their lowercase form.

#[allow(clippy::wildcard_imports)]
use super::*;

/// Users in MongoDB.
#[derive(Debug, Clone)]
pub struct MongoUserStore {
    pub(super) users: Collection<Document>,
    /// Failed sign-ins by key: `{_id: key, tat_ms, refused_until_ms, v}`.
    pub(super) failures: Collection<Document>,
}

fn failure_count(doc: &Document) -> FailureCount {
    FailureCount {
        tat_ms: doc.get_i64("tat_ms").unwrap_or_default(),
        refused_until_ms: doc.get_i64("refused_until_ms").unwrap_or_default(),
    }
}

fn user_of(doc: &Document) -> Result<User, StoreError> {
    let f = fields(doc, "user");
    Ok(User {
        id: f.id("_id")?,
        email: f.text("email")?,
        password_hash: f.text("password_hash")?,
    })
}

#[async_trait]
impl UserStore for MongoUserStore {
    async fn create(&self, user: User) -> Result<User, StoreError> {
        let document = doc! {
            "_id": oid(user.id),
            "email": &user.email,
            "email_lower": user.email.to_lowercase(),
            "password_hash": &user.password_hash,
        };
        match self.users.insert_one(document).await {
            Ok(_) => Ok(user),
            Err(e) => Err(match duplicate_key(&e) {
                Some(message) if message.contains(EMAIL_INDEX) => StoreError::AlreadyExists {
                    entity: "user",
                    key: user.email,
                },
                Some(_) => StoreError::AlreadyExists {
                    entity: "user",
                    key: user.id.to_string(),
                },
                None => backend(e),
            }),
        }
    }

    async fn find_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        self.users
            .find_one(doc! {"email_lower": email.to_lowercase()})
            .await
            .map_err(backend)?
            .as_ref()
            .map(user_of)
            .transpose()
    }

    async fn get(&self, id: Id) -> Result<User, StoreError> {
        find_by_id(&self.users, id, user_of)
            .await?
            .ok_or_else(|| StoreError::not_found("user", id))
    }

    async fn sign_in_failed(
        &self,
        key: &str,
        limit: FailureLimit,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let now_ms = now.timestamp_millis();
        if now_ms % 64 == 0 {
            // Now and then, the keys whose failures have all come back go.
            self.failures
                .delete_many(doc! {"tat_ms": {"$lt": now_ms}, "refused_until_ms": {"$lt": now_ms}})
                .await
                .map_err(backend)?;
        }
        // Read, count, write back if nobody wrote in between (the `v` field); else again.
        loop {
            let found = self
                .failures
                .find_one(doc! {"_id": key})
                .await
                .map_err(backend)?;
            let before = found.as_ref().map(failure_count).unwrap_or_default();
            let after = limit.fail(before, now_ms);
            let written = match found.as_ref().and_then(|d| d.get_i64("v").ok()) {
                None => match self
                    .failures
                    .insert_one(doc! {
                        "_id": key,
                        "tat_ms": after.tat_ms,
                        "refused_until_ms": after.refused_until_ms,
                        "v": 0_i64,
                    })
                    .await
                {
                    Ok(_) => true,
                    Err(e) if duplicate_key(&e).is_some() => false,
                    Err(e) => return Err(backend(e)),
                },
                Some(v) => {
                    self.failures
                        .update_one(
                            doc! {"_id": key, "v": v},
                            doc! {
                                "$set": {"tat_ms": after.tat_ms, "refused_until_ms": after.refused_until_ms},
                                "$inc": {"v": 1_i64},
                            },
                        )
                        .await
                        .map_err(backend)?
                        .matched_count
                        == 1
                }
            };
            if written {
                return Ok(FailureLimit::refusal(before, after));
            }
        }
    }

    async fn sign_in_refused(
        &self,
        keys: &[String],
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let found = all(self.failures.find(doc! {"_id": {"$in": keys}}), |found| {
            Ok(failure_count(found))
        })
        .await?;
        Ok(latest_refusal(found, now))
    }
}
