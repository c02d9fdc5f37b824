//! Wall time, injectable: services read the time from a [`Clock`], never from `Utc::now()`
//! inside a handler, so tests can run expiry and session lifetimes on tokio's paused clock.
//!
//! | clock | now is | for |
//! |---|---|---|
//! | [`Clock::system`] | the system's wall time | services |
//! | [`Clock::tokio`] | a wall time fixed at creation, advancing with tokio's clock | tests on a paused clock (`start_paused`, `tokio::time::advance`) |
//! | [`Clock::fixed`] | one instant, always | unit tests of rules |
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! use std::time::Duration;
//! use ticketing_core::Clock;
//!
//! let clock = Clock::tokio();
//! let before = clock.now();
//! tokio::time::advance(Duration::from_secs(15 * 60)).await;
//! assert_eq!((clock.now() - before).num_minutes(), 15);
//! # }
//! ```

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};

/// Where wall time comes from. Cheap to clone; every clone reads the same time.
#[derive(Clone)]
pub struct Clock {
    source: Source,
}

#[derive(Clone)]
enum Source {
    System,
    Tokio {
        anchor: DateTime<Utc>,
        start: tokio::time::Instant,
    },
    Fixed(DateTime<Utc>),
    Custom(Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>),
}

impl Clock {
    /// The system's wall time.
    pub fn system() -> Self {
        Clock {
            source: Source::System,
        }
    }

    /// Wall time that starts at the system's time now and then advances with tokio's clock:
    /// on a paused runtime it moves only when tokio's time does (`tokio::time::advance`, or
    /// auto-advance while every task sleeps). Call it inside the runtime.
    pub fn tokio() -> Self {
        Clock {
            source: Source::Tokio {
                anchor: Utc::now(),
                start: tokio::time::Instant::now(),
            },
        }
    }

    /// Always `at`.
    pub fn fixed(at: DateTime<Utc>) -> Self {
        Clock {
            source: Source::Fixed(at),
        }
    }

    /// Any source of wall time.
    pub fn from_fn(now: impl Fn() -> DateTime<Utc> + Send + Sync + 'static) -> Self {
        Clock {
            source: Source::Custom(Arc::new(now)),
        }
    }

    /// The current wall time.
    pub fn now(&self) -> DateTime<Utc> {
        match &self.source {
            Source::System => Utc::now(),
            Source::Tokio { anchor, start } => {
                let elapsed =
                    chrono::Duration::from_std(start.elapsed()).unwrap_or(chrono::Duration::MAX);
                *anchor + elapsed
            }
            Source::Fixed(at) => *at,
            Source::Custom(now) => now(),
        }
    }
}

impl Default for Clock {
    /// The system clock.
    fn default() -> Self {
        Clock::system()
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.source {
            Source::System => "system",
            Source::Tokio { .. } => "tokio",
            Source::Fixed(_) => "fixed",
            Source::Custom(_) => "custom",
        };
        f.debug_tuple("Clock").field(&kind).finish()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_tokio_clock_moves_only_with_tokio_time() {
        let clock = Clock::tokio();
        let t0 = clock.now();
        assert_eq!(clock.now(), t0, "paused: no time passes");
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert_eq!(clock.now() - t0, chrono::Duration::hours(1));
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(clock.now() - t0, chrono::Duration::minutes(61));
    }

    #[test]
    fn fixed_and_custom_clocks_say_what_they_are_told() {
        let at: DateTime<Utc> = "2030-01-02T03:04:05Z".parse().unwrap();
        assert_eq!(Clock::fixed(at).now(), at);
        assert_eq!(Clock::from_fn(move || at).now(), at);
        let system = Clock::default().now();
        assert!((Utc::now() - system).num_seconds().abs() < 5);
        assert_eq!(format!("{:?}", Clock::fixed(at)), "Clock(\"fixed\")");
    }
}
