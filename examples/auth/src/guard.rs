//! What keeps sign-up and sign-in from being turned against the service: password hashing
//! bounded to what the machine can do, and failed sign-ins limited per account and per client
//! address.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use ipnet::IpNet;
use ticketing_common::ApiError;
use tokio::sync::Semaphore;

/// Options of the guards, from the environment and flags.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct GuardArgs {
    /// Passwords hashed at once (argon2id, about 19 MiB each); default: the number of cores.
    #[arg(long, env = "HASHING_WORKERS")]
    pub hashing_workers: Option<usize>,
    /// Sign-ups and sign-ins waiting for a hashing worker; past it the answer is 503 with
    /// `Retry-After`.
    #[arg(long, env = "HASHING_QUEUE", default_value_t = 64)]
    pub hashing_queue: usize,
    /// Failed sign-ins allowed per account within the window; then 429 with `Retry-After`.
    #[arg(long, env = "SIGNIN_FAILURES_PER_ACCOUNT", default_value_t = 5)]
    pub signin_failures_per_account: u32,
    /// Failed sign-ins allowed per client address within the window; then 429.
    #[arg(long, env = "SIGNIN_FAILURES_PER_ADDRESS", default_value_t = 50)]
    pub signin_failures_per_address: u32,
    /// The window, in seconds: allowances come back evenly over it.
    #[arg(long, env = "SIGNIN_FAILURE_WINDOW_SECONDS", default_value_t = 300)]
    pub signin_failure_window_seconds: u64,
    /// Proxies (an ingress) whose `X-Forwarded-For` names the client, comma-separated
    /// addresses or ranges (`10.0.0.1`, `10.0.0.0/8`: an ingress controller's pods change
    /// address). From any other peer the header is ignored.
    #[arg(long, env = "TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_proxy)]
    pub trusted_proxies: Vec<IpNet>,
}

impl Default for GuardArgs {
    fn default() -> Self {
        GuardArgs {
            hashing_workers: None,
            hashing_queue: 64,
            signin_failures_per_account: 5,
            signin_failures_per_address: 50,
            signin_failure_window_seconds: 300,
            trusted_proxies: Vec::new(),
        }
    }
}

/// A trusted proxy: an address (a network of one) or a network.
pub fn parse_proxy(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{text:?} is neither an IP address nor a network (10.0.0.0/8)"))
}

/// The guards the auth handlers share.
#[derive(Clone)]
pub struct Guards {
    /// Password hashing, bounded.
    pub hashing: Hashing,
    /// Failed sign-ins, limited.
    pub signin: SignInLimits,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Arc<[IpNet]>,
}

impl Guards {
    /// The guards these options describe.
    pub fn new(args: &GuardArgs) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        let window = Duration::from_secs(args.signin_failure_window_seconds.max(1));
        Guards {
            hashing: Hashing::new(args.hashing_workers.unwrap_or(cores), args.hashing_queue),
            signin: SignInLimits::new(
                args.signin_failures_per_account,
                args.signin_failures_per_address,
                window,
            ),
            trusted_proxies: args.trusted_proxies.clone().into(),
        }
    }
}

impl Default for Guards {
    fn default() -> Self {
        Guards::new(&GuardArgs::default())
    }
}

/// Runs password hashes on `workers` threads of their own, with at most `queue` more waiting; a
/// request past that is refused with 503 at once instead of piling up memory.
///
/// Own threads rather than tokio's blocking pool: each argon2id hash takes 19 MiB, and the
/// allocator keeps what a thread freed for that thread's next allocation. On the blocking pool,
/// whose threads come and go by the dozen, that retained memory grew to some 650 MB under a
/// burst of sign-ups; on two long-lived threads it stays at about two hashes' worth.
#[derive(Clone)]
pub struct Hashing {
    workers: Arc<Semaphore>,
    waiting: Arc<AtomicUsize>,
    queue: usize,
    jobs: std::sync::mpsc::Sender<Job>,
}

/// A hash to run on a hashing thread.
type Job = Box<dyn FnOnce() + Send>;

/// Leaves the queue when dropped.
struct InQueue<'a>(&'a AtomicUsize);

impl Drop for InQueue<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Hashing {
    /// At most `workers` hashes at once (at least one), `queue` waiting.
    pub fn new(workers: usize, queue: usize) -> Self {
        let workers = workers.max(1);
        let (jobs, queued) = std::sync::mpsc::channel::<Job>();
        let queued = Arc::new(Mutex::new(queued));
        for n in 0..workers {
            let queued = queued.clone();
            // The threads end when every `Hashing` is dropped (the channel closes).
            let _ = std::thread::Builder::new()
                .name(format!("password-hashing-{n}"))
                .spawn(move || {
                    loop {
                        let job = queued.lock().unwrap_or_else(PoisonError::into_inner).recv();
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                });
        }
        Hashing {
            workers: Arc::new(Semaphore::new(workers)),
            waiting: Arc::new(AtomicUsize::new(0)),
            queue,
            jobs,
        }
    }

    /// Runs `work` when a worker is free; 503 when the queue is full.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let permit = match self.workers.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                let place = InQueue(&self.waiting);
                if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.queue {
                    drop(place);
                    return Err(ApiError::Busy { retry_after: 1 });
                }
                let permit = self
                    .workers
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(ApiError::internal)?;
                drop(place);
                permit
            }
        };
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _permit = permit;
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
            let _ = done.send(outcome);
        });
        self.jobs
            .send(job)
            .map_err(|_| ApiError::internal(anyhow::anyhow!("the hashing threads are gone")))?;
        match result.await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(_panic)) => Err(ApiError::internal(anyhow::anyhow!(
                "password hashing panicked"
            ))),
            Err(_) => Err(ApiError::internal(anyhow::anyhow!(
                "the hashing thread went away"
            ))),
        }
    }
}

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

/// The client's address: the peer, or — when the peer is a trusted proxy — the right-most
/// address of `X-Forwarded-For` that is not itself a trusted proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub Option<IpAddr>);

/// The address a request came from, given the peer and the proxies trusted.
pub fn client_address(
    peer: Option<IpAddr>,
    forwarded_for: Option<&str>,
    trusted: &[IpNet],
) -> Option<IpAddr> {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let peer = peer?;
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let Some(forwarded) = forwarded_for else {
        return Some(peer);
    };
    let mut chain = forwarded
        .split(',')
        .rev()
        .map(|hop| hop.trim().parse::<IpAddr>());
    let mut last = peer;
    for hop in chain.by_ref() {
        match hop {
            Ok(ip) if is_trusted(&ip) => last = ip,
            Ok(ip) => return Some(ip),
            // A malformed hop: trust nothing further left.
            Err(_) => return Some(last),
        }
    }
    Some(last)
}

impl FromRequestParts<crate::startup::AuthState> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &crate::startup::AuthState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        let forwarded = parts
            .headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok());
        Ok(ClientAddress(client_address(
            peer,
            forwarded,
            &state.guards.trusted_proxies,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_for_is_believed_only_from_a_trusted_proxy() {
        let proxy = ip("10.0.0.1");
        let trusted = [IpNet::from(proxy)];
        let header = Some("203.0.113.9, 198.51.100.7");
        assert_eq!(
            client_address(Some(ip("192.0.2.1")), header, &trusted),
            Some(ip("192.0.2.1")),
            "a stranger's header is ignored"
        );
        assert_eq!(
            client_address(Some(proxy), header, &trusted),
            Some(ip("198.51.100.7")),
            "the right-most untrusted hop"
        );
        assert_eq!(
            client_address(Some(proxy), Some("203.0.113.9, 10.0.0.1"), &trusted),
            Some(ip("203.0.113.9"))
        );
        assert_eq!(client_address(Some(proxy), None, &trusted), Some(proxy));
        assert_eq!(
            client_address(Some(proxy), Some("garbage"), &trusted),
            Some(proxy)
        );
        assert_eq!(client_address(None, header, &trusted), None);
    }

    #[test]
    fn a_trusted_range_covers_every_address_in_it() {
        let trusted = [
            parse_proxy("10.0.0.0/8").unwrap(),
            parse_proxy("192.0.2.7").unwrap(),
        ];
        let header = Some("203.0.113.9, 10.1.2.3");
        // An ingress pod anywhere in the range, behind another hop in it.
        assert_eq!(
            client_address(Some(ip("10.244.3.17")), header, &trusted),
            Some(ip("203.0.113.9"))
        );
        assert_eq!(
            client_address(Some(ip("192.0.2.7")), header, &trusted),
            Some(ip("203.0.113.9"))
        );
        assert_eq!(
            client_address(Some(ip("11.0.0.1")), header, &trusted),
            Some(ip("11.0.0.1")),
            "outside the range the header is ignored"
        );
        assert!(parse_proxy("10.0.0.0/33").is_err());
        assert!(parse_proxy("ingress").unwrap_err().contains("neither"));
    }

    #[test]
    fn only_failures_count_and_the_limit_lifts() {
        let limits = SignInLimits::new(3, 100, Duration::from_secs(3));
        let address = Some(ip("192.0.2.1"));
        for _ in 0..100 {
            // Successful sign-ins never call `failed`: nothing accrues.
            assert!(limits.check("a@b.com", address).is_ok());
        }
        for _ in 0..3 {
            assert!(limits.check("a@b.com", address).is_ok());
            limits.failed("a@b.com", address);
        }
        assert!(limits.check("a@b.com", address).is_ok(), "three allowed");
        limits.failed("A@B.com", address);
        let Err(ApiError::TooManyRequests { retry_after }) = limits.check("a@b.com", address)
        else {
            panic!("the fourth failure blocks the account");
        };
        assert!((1..=3).contains(&retry_after), "{retry_after}");
        assert!(
            limits.check("other@b.com", Some(ip("192.0.2.2"))).is_ok(),
            "another account from another address"
        );
        std::thread::sleep(Duration::from_millis(1100));
        assert!(
            limits.check("a@b.com", address).is_ok(),
            "the allowance comes back"
        );
    }

    #[test]
    fn an_address_is_limited_across_accounts() {
        let limits = SignInLimits::new(100, 4, Duration::from_secs(60));
        let address = Some(ip("192.0.2.3"));
        for n in 0..5 {
            limits.failed(&format!("user{n}@b.com"), address);
        }
        assert!(limits.check("fresh@b.com", address).is_err());
        assert!(limits.check("fresh@b.com", Some(ip("192.0.2.4"))).is_ok());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hashing_beyond_workers_and_queue_is_refused_at_once() {
        let hashing = Hashing::new(1, 2);
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let wait = Arc::new(Mutex::new(wait));
        let blocker = {
            let hashing = hashing.clone();
            let wait = wait.clone();
            tokio::spawn(async move {
                hashing
                    .run(move || {
                        let _ = wait.lock().unwrap().recv();
                    })
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let queued: Vec<_> = (0..2)
            .map(|_| {
                let hashing = hashing.clone();
                tokio::spawn(async move { hashing.run(|| 7).await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let refused = hashing.run(|| 8).await;
        assert!(
            matches!(refused, Err(ApiError::Busy { retry_after: 1 })),
            "{refused:?}"
        );
        release.send(()).unwrap();
        blocker.await.unwrap().unwrap();
        for queued in queued {
            assert_eq!(queued.await.unwrap().unwrap(), 7);
        }
        assert_eq!(hashing.run(|| 9).await.unwrap(), 9, "the queue drained");
    }
}
