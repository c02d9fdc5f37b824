//! Conformance suites: the contract of each backend kind, as plain async functions named as
//! specification sentences. Every backend's tests run the whole list through the matching
//! macro, which expands one named test per case:
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use ticketing_core::Bus;
//! # use ticketing_core::conformance::bus::{BusCapabilities, BusFactory};
//! # #[derive(Default)] struct MyBusFactory;
//! # #[async_trait::async_trait]
//! # impl BusFactory for MyBusFactory {
//! #     async fn bus(&self) -> Arc<dyn Bus> { unimplemented!() }
//! #     fn capabilities(&self) -> BusCapabilities { BusCapabilities::default() }
//! # }
//! ticketing_core::bus_conformance_tests!(
//!     #[tokio::test(start_paused = true)]
//!     factory = MyBusFactory::default()
//! );
//! # fn main() {}
//! ```

pub mod bus;
pub mod commit;
pub mod envelope;
pub mod ordered;
#[cfg(feature = "ticketing")]
#[cfg_attr(docsrs, doc(cfg(feature = "ticketing")))]
pub mod outbox;
#[cfg(feature = "ticketing")]
#[cfg_attr(docsrs, doc(cfg(feature = "ticketing")))]
pub mod payments;
pub mod replica;
pub mod request;
pub mod several;
pub mod signal;
#[cfg(feature = "ticketing")]
#[cfg_attr(docsrs, doc(cfg(feature = "ticketing")))]
pub mod store;

use std::future::Future;
use std::time::Duration;

/// Polls `check` every 10 ms until it returns `Some`, or panics with `what` after `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The dead letters of `bus` once there is at least one (panics after `limit`).
pub async fn dead_letters_eventually(
    bus: &std::sync::Arc<dyn crate::Bus>,
    limit: Duration,
) -> Vec<crate::bus::DeadLetter> {
    eventually(limit, "a dead letter", || {
        let bus = bus.clone();
        async move {
            let dead = bus.dead_letters().await.expect("dead letters");
            (!dead.is_empty()).then_some(dead)
        }
    })
    .await
}

/// Expands one test per case of the suite in module `$suite`: each evaluates the factory and
/// runs the case on it (the suites' `*_conformance_tests!` macros list their cases here).
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_cases {
    (#[$attr:meta] [$factory:expr] $suite:ident: $($case:ident)*) => {
        $(
            #[$attr]
            async fn $case() {
                let factory = $factory;
                $crate::conformance::$suite::$case(&factory).await;
            }
        )*
    };
}
