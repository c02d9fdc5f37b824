//! Users in memory: emails unique ignoring case, under one lock.

#[allow(clippy::wildcard_imports)]
use super::*;

/// Users in memory.
#[derive(Debug, Clone, Default)]
pub struct InMemoryUserStore {
    inner: Arc<Mutex<Users>>,
    pub(super) faults: StoreFaults,
}

#[derive(Debug, Default)]
struct Users {
    by_id: HashMap<Id, User>,
    by_email: HashMap<String, Id>,
    /// Failed sign-ins by key.
    failures: HashMap<String, FailureCount>,
}

/// Keys kept before those whose failures have all come back are pruned.
const PRUNE_AT: usize = 10_000;

impl InMemoryUserStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl UserStore for InMemoryUserStore {
    async fn create(&self, user: User) -> Result<User, StoreError> {
        self.faults.check(StoreWrite::UserCreate)?;
        let mut users = lock(&self.inner);
        let key = user.email.to_lowercase();
        if users.by_email.contains_key(&key) {
            return Err(StoreError::AlreadyExists {
                entity: "user",
                key: user.email,
            });
        }
        if users.by_id.contains_key(&user.id) {
            return Err(StoreError::AlreadyExists {
                entity: "user",
                key: user.id.to_string(),
            });
        }
        users.by_email.insert(key, user.id);
        users.by_id.insert(user.id, user.clone());
        Ok(user)
    }

    async fn find_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        let users = lock(&self.inner);
        Ok(users
            .by_email
            .get(&email.to_lowercase())
            .and_then(|id| users.by_id.get(id))
            .cloned())
    }

    async fn get(&self, id: Id) -> Result<User, StoreError> {
        lock(&self.inner)
            .by_id
            .get(&id)
            .cloned()
            .ok_or_else(|| StoreError::not_found("user", id))
    }

    async fn sign_in_failed(
        &self,
        key: &str,
        limit: FailureLimit,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let now_ms = now.timestamp_millis();
        let mut users = lock(&self.inner);
        if users.failures.len() >= PRUNE_AT {
            users
                .failures
                .retain(|_, c| c.tat_ms > now_ms || c.refused_until_ms > now_ms);
        }
        let before = users.failures.get(key).copied().unwrap_or_default();
        let after = limit.fail(before, now_ms);
        users.failures.insert(key.to_owned(), after);
        Ok(FailureLimit::refusal(before, after))
    }

    async fn sign_in_refused(
        &self,
        keys: &[String],
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let users = lock(&self.inner);
        Ok(latest_refusal(
            keys.iter().filter_map(|k| users.failures.get(k)).copied(),
            now,
        ))
    }
}
