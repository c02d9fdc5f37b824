//! Failed sign-ins limited per account and per client address.

#[allow(clippy::wildcard_imports)]
use super::*;

/// Failed sign-ins per account and per client address (GCRA from `governor`: a burst of the
/// allowance, coming back evenly over the window). Only failures count, so nobody can lock an
/// account by signing in to it; once an account or address is over its allowance, its sign-ins
/// are refused with 429 before any password is checked, until the allowance comes back.
#[derive(Clone)]
pub struct SignInLimits {
    inner: Arc<LimitsInner>,
}

struct LimitsInner {
    accounts: DefaultKeyedRateLimiter<String>,
    addresses: DefaultKeyedRateLimiter<IpAddr>,
    /// Keys over their allowance, and until when.
    blocked: Mutex<HashMap<Key, Instant>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Account(String),
    Address(IpAddr),
}

/// Entries kept before the expired ones are pruned.
const PRUNE_AT: usize = 10_000;

impl SignInLimits {
    /// `per_account` and `per_address` failures (at least one each) per `window`.
    pub fn new(per_account: u32, per_address: u32, window: Duration) -> Self {
        let quota = |allowance: u32| {
            let allowance = NonZeroU32::new(allowance).unwrap_or(NonZeroU32::MIN);
            Quota::with_period(window / allowance.get())
                .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
                .allow_burst(allowance)
        };
        SignInLimits {
            inner: Arc::new(LimitsInner {
                accounts: RateLimiter::keyed(quota(per_account)),
                addresses: RateLimiter::keyed(quota(per_address)),
                blocked: Mutex::new(HashMap::new()),
            }),
        }
    }

    fn keys(email: &str, address: Option<IpAddr>) -> Vec<Key> {
        let mut keys = vec![Key::Account(email.to_lowercase())];
        keys.extend(address.map(Key::Address));
        keys
    }

    /// 429 when the account or the address is over its allowance.
    pub fn check(&self, email: &str, address: Option<IpAddr>) -> Result<(), ApiError> {
        let now = Instant::now();
        let blocked = self
            .inner
            .blocked
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let until = Self::keys(email, address)
            .iter()
            .filter_map(|key| blocked.get(key).copied())
            .filter(|until| *until > now)
            .max();
        match until {
            Some(until) => Err(ApiError::TooManyRequests {
                retry_after: (until - now).as_secs_f64().ceil() as u64,
            }),
            None => Ok(()),
        }
    }

    /// Counts a failed sign-in against the account and the address.
    pub fn failed(&self, email: &str, address: Option<IpAddr>) {
        let clock = DefaultClock::default();
        let now = Instant::now();
        let mut over = Vec::new();
        let account = email.to_lowercase();
        if let Err(not_until) = self.inner.accounts.check_key(&account) {
            over.push((Key::Account(account), not_until.wait_time_from(clock.now())));
        }
        if let Some(address) = address
            && let Err(not_until) = self.inner.addresses.check_key(&address)
        {
            over.push((Key::Address(address), not_until.wait_time_from(clock.now())));
        }
        let mut blocked = self
            .inner
            .blocked
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if blocked.len() >= PRUNE_AT {
            blocked.retain(|_, until| *until > now);
            self.inner.accounts.retain_recent();
            self.inner.addresses.retain_recent();
        }
        for (key, wait) in over {
            tracing::warn!(
                ?key,
                ?wait,
                "too many failed sign-ins; refusing for a while"
            );
            blocked.insert(key, now + wait.max(Duration::from_secs(1)));
        }
    }
}
