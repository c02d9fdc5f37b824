//! Failed sign-ins limited per account and per client address, counted in the user store so
//! that every replica of the service sees them.

#[allow(clippy::wildcard_imports)]
use super::*;

/// Failed sign-ins per account and per client address (GCRA: a burst of the allowance, coming
/// back evenly over the window). Only failures count, so nobody can lock an account by signing
/// in to it; once an account or address is over its allowance, its sign-ins are refused with
/// 429 before any password is checked, until the allowance comes back.
///
/// The counts live in the user store ([`UserStore::sign_in_failed`]), not in the process: with
/// several replicas of the service behind a load balancer, an attacker gets the allowance
/// once, not once per replica. The store is the service's database, which every replica
/// shares already and which a sign-in reads anyway; the auth service needs no broker for it.
#[derive(Clone)]
pub struct SignInLimits {
    per_account: FailureLimit,
    per_address: FailureLimit,
    clock: ticketing_core::Clock,
}

impl SignInLimits {
    /// `per_account` and `per_address` failures (at least one each) per `window`.
    pub fn new(per_account: u32, per_address: u32, window: Duration) -> Self {
        let limit = |allowance: u32| FailureLimit {
            allowance: allowance.max(1),
            window,
        };
        SignInLimits {
            per_account: limit(per_account),
            per_address: limit(per_address),
            clock: ticketing_core::Clock::system(),
        }
    }

    /// The same limits, reading the time from `clock` (a test's paused clock).
    pub fn with_clock(self, clock: ticketing_core::Clock) -> Self {
        SignInLimits { clock, ..self }
    }

    /// A sign-in of `email` from `address`, checked and counted in `users`.
    pub fn attempt<'a>(
        &'a self,
        users: &'a dyn UserStore,
        email: &str,
        address: Option<IpAddr>,
    ) -> Attempt<'a> {
        let mut keys = vec![(
            format!("account:{}", email.to_lowercase()),
            self.per_account,
        )];
        keys.extend(address.map(|a| (format!("address:{a}"), self.per_address)));
        Attempt {
            users,
            keys,
            now: self.clock.now(),
        }
    }
}

/// One sign-in, as the limits see it: its account and address keys, at the time it came.
pub struct Attempt<'a> {
    users: &'a dyn UserStore,
    keys: Vec<(String, FailureLimit)>,
    now: chrono::DateTime<chrono::Utc>,
}

impl Attempt<'_> {
    /// 429 when the account or the address is over its allowance.
    pub async fn check(&self) -> Result<(), ApiError> {
        let keys: Vec<String> = self.keys.iter().map(|(k, _)| k.clone()).collect();
        match self.users.sign_in_refused(&keys, self.now).await? {
            Some(until) => Err(ApiError::TooManyRequests {
                retry_after: u64::try_from((until - self.now).num_milliseconds())
                    .unwrap_or(0)
                    .div_ceil(1000)
                    .max(1),
            }),
            None => Ok(()),
        }
    }

    /// Counts the sign-in as failed against the account and the address.
    pub async fn failed(&self) -> Result<(), ApiError> {
        for (key, limit) in &self.keys {
            if let Some(until) = self.users.sign_in_failed(key, *limit, self.now).await? {
                tracing::warn!(
                    %key,
                    %until,
                    "too many failed sign-ins; refusing for a while"
                );
            }
        }
        Ok(())
    }
}
