//! Users in MongoDB: emails unique through an index on their lowercase form.

#[allow(clippy::wildcard_imports)]
use super::*;

/// Users in MongoDB.
#[derive(Debug, Clone)]
pub struct MongoUserStore {
    pub(super) users: Collection<Document>,
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
}
