//! What keeps sign-up and sign-in from being turned against the service: password hashing
//! bounded to what the machine can do, and failed sign-ins limited per account and per client
//! address.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use ipnet::IpNet;
use ticketing_common::ApiError;
use ticketing_core::ticketing::store::{FailureLimit, UserStore};
use tokio::sync::Semaphore;

mod client;
mod hashing;
mod limits;
pub use client::{ClientAddress, client_address};
pub use hashing::Hashing;
pub use limits::{Attempt, SignInLimits};

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

    /// Whether a sign-in of `email` from `address` is let through now.
    async fn allowed(
        limits: &SignInLimits,
        users: &dyn UserStore,
        email: &str,
        address: Option<IpAddr>,
    ) -> bool {
        limits.attempt(users, email, address).check().await.is_ok()
    }

    /// Counts a failed sign-in of `email` from `address`.
    async fn fail(
        limits: &SignInLimits,
        users: &dyn UserStore,
        email: &str,
        address: Option<IpAddr>,
    ) {
        limits
            .attempt(users, email, address)
            .failed()
            .await
            .expect("counted");
    }

    #[tokio::test(start_paused = true)]
    async fn only_failures_count_and_the_limit_lifts() {
        let users = ticketing_store::memory::InMemoryUserStore::new();
        let limits = SignInLimits::new(3, 100, Duration::from_secs(3))
            .with_clock(ticketing_core::Clock::tokio());
        let address = Some(ip("192.0.2.1"));
        for _ in 0..100 {
            // Successful sign-ins never count a failure: nothing accrues.
            assert!(allowed(&limits, &users, "a@b.com", address).await);
        }
        for _ in 0..3 {
            assert!(allowed(&limits, &users, "a@b.com", address).await);
            fail(&limits, &users, "a@b.com", address).await;
        }
        assert!(
            allowed(&limits, &users, "a@b.com", address).await,
            "three allowed"
        );
        fail(&limits, &users, "A@B.com", address).await;
        let Err(ApiError::TooManyRequests { retry_after }) =
            limits.attempt(&users, "a@b.com", address).check().await
        else {
            panic!("the fourth failure blocks the account");
        };
        assert!((1..=3).contains(&retry_after), "{retry_after}");
        assert!(
            allowed(&limits, &users, "other@b.com", Some(ip("192.0.2.2"))).await,
            "another account from another address"
        );
        tokio::time::advance(Duration::from_millis(1100)).await;
        assert!(
            allowed(&limits, &users, "a@b.com", address).await,
            "the allowance comes back"
        );
    }

    #[tokio::test]
    async fn an_address_is_limited_across_accounts() {
        let users = ticketing_store::memory::InMemoryUserStore::new();
        let limits = SignInLimits::new(100, 4, Duration::from_secs(60));
        let address = Some(ip("192.0.2.3"));
        for n in 0..5 {
            fail(&limits, &users, &format!("user{n}@b.com"), address).await;
        }
        assert!(!allowed(&limits, &users, "fresh@b.com", address).await);
        assert!(allowed(&limits, &users, "fresh@b.com", Some(ip("192.0.2.4"))).await);
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
