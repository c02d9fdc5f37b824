//! Listeners and the runtime that drives them.
//!
//! A service writes a [`Listener`]: its event type, its queue group, its options and
//! `on_message`. [`spawn_listener`] subscribes it and runs it:
//!
//! | outcome of `on_message` | settlement |
//! |---|---|
//! | `Ok(())` | `ack` |
//! | [`HandlerError::Retry`], attempts left | `nak` with the backoff delay of this attempt |
//! | [`HandlerError::Retry`], last attempt | `term`: dead-lettered with the error |
//! | [`HandlerError::Wait`] (a version gap), younger than the gap horizon | `nak` with the backoff delay (capped); no attempt budget |
//! | [`HandlerError::Wait`], published longer ago than the gap horizon | `term`: dead-lettered with the error |
//! | [`HandlerError::Permanent`] | `term`: dead-lettered with the error |
//! | the payload does not decode | `term`: dead-lettered with the decode error, handler not called |
//! | the handler panics | `term`: dead-lettered with the panic message; the listener goes on |
//!
//! Nothing is retried without a delay, so a failing message never hot-loops, and nothing a
//! handler does can crash the process.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio_util::sync::CancellationToken;

use crate::bus::{BoxError, Bus, BusError, Headers, SubscribeOptions, header};
use crate::event::Events;
use crate::task::Task;

pub mod pipeline;
mod router;
mod runtime;
pub use router::{Handler, Router};
pub use runtime::{ListenerHandle, spawn_listener, spawn_listener_with_token};

/// A consumer of one event type, in one queue group.
///
/// ```
/// use async_trait::async_trait;
/// use serde::{Deserialize, Serialize};
/// use ticketing_core::{Event, HandlerError, Listener, MessageContext};
///
/// #[derive(Debug, Serialize, Deserialize)]
/// struct ParcelShipped { parcel: String, carrier: String }
///
/// impl Event for ParcelShipped {
///     const SUBJECT: &'static str = "parcel:shipped";
///     fn message_id(&self) -> String { format!("{}:{}", Self::SUBJECT, self.parcel) }
/// }
///
/// struct NotifyRecipient;
///
/// #[async_trait]
/// impl Listener for NotifyRecipient {
///     type Event = ParcelShipped;
///
///     fn queue_group(&self) -> &str {
///         "notifications-service"
///     }
///
///     async fn on_message(&self, event: ParcelShipped, _ctx: &MessageContext<'_>) -> Result<(), HandlerError> {
///         tracing::info!(parcel = %event.parcel, carrier = %event.carrier, "notify the recipient");
///         Ok(())
///     }
/// }
/// ```
#[async_trait]
pub trait Listener: Send + Sync + 'static {
    /// What this listener consumes: an [`Event`](crate::Event) (on its subject), or an enum of
    /// events declared with [`events!`](crate::events) (one durable consumer of all their
    /// subjects).
    type Event: Events;

    /// The queue group, also the durable consumer name. Keep it stable: a renamed group is a
    /// new group and replays the whole history.
    fn queue_group(&self) -> &str;

    /// Delivery and retry settings.
    fn options(&self) -> ListenerOptions {
        ListenerOptions::default()
    }

    /// Handles one event. `Ok` acks it; see [`HandlerError`] for the rest.
    async fn on_message(
        &self,
        event: Self::Event,
        ctx: &MessageContext<'_>,
    ) -> Result<(), HandlerError>;
}

/// How the runtime delivers and retries.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ListenerOptions {
    /// Redeliver a message not settled within this time. Default 5 s (as the original system).
    pub ack_wait: Duration,
    /// Retryable failures ([`HandlerError::Retry`]) of one message a member sees before it
    /// dead-letters the message. Default 10. Waits do not count, nor do deliveries cut short
    /// by a crash or answered by another member (a message that kills the process every time
    /// is dead-lettered by the bus, past the cap of [`subscribe_options`](Self::subscribe_options)).
    pub max_deliver: u32,
    /// Unacknowledged messages allowed for the whole queue group. Default 1000.
    pub max_ack_pending: usize,
    /// Delay before each retry.
    pub backoff: RetryBackoff,
    /// Messages handled at once by this member. Default 1: in order, one at a time.
    pub concurrency: usize,
    /// Messages fetched ahead of the handler by a pulling backend; see
    /// [`SubscribeOptions::prefetch`]. Default 16.
    pub prefetch: usize,
    /// How long an event may wait for an earlier one ([`HandlerError::Wait`]: a version gap),
    /// measured from when it was published, before it is dead-lettered. Default 6 hours: a
    /// replica that lags for minutes, or a service that was down for an hour, catches up with
    /// no dead letter. Waiting retries do not count against `max_deliver`.
    pub gap_horizon: Duration,
    /// Delay before each retry of a waiting event. Default 10 ms doubling up to 1 s: a short
    /// cap, because a burst delivered out of order resolves one version per retry round. An
    /// event that has waited long is retried less often: never sooner than a twentieth of its
    /// age, up to a minute (so thousands of events waiting for hours cost little).
    pub gap_backoff: RetryBackoff,
    /// The longest a handler may take; past it the delivery is a retryable failure
    /// ([`pipeline::TimeoutLayer`]). Default none.
    pub timeout: Option<Duration>,
    /// Per-key order ([`Bus::subscribe_ordered`]): the events
    /// of one record ([`Event::key`](crate::Event::key)), across every subject this listener
    /// consumes, come in publish order, one at a time, to one member at a time; other records
    /// run in parallel. A replica then rarely waits for an earlier version, and an event that
    /// does wait (naked) holds only its own record.
    /// On a bus without partitions (NATS without `partitions` set) the listener fails to
    /// start with [`BusError::Unsupported`]. Default off.
    pub ordered: bool,
}

impl Default for ListenerOptions {
    fn default() -> Self {
        let bus = SubscribeOptions::default();
        ListenerOptions {
            ack_wait: bus.ack_wait,
            max_deliver: bus.max_deliver,
            max_ack_pending: bus.max_ack_pending,
            backoff: RetryBackoff::default(),
            concurrency: 1,
            prefetch: bus.prefetch,
            gap_horizon: Duration::from_secs(6 * 3600),
            gap_backoff: RetryBackoff {
                initial: Duration::from_millis(10),
                multiplier: 2.0,
                max: Duration::from_secs(1),
            },
            timeout: None,
            ordered: false,
        }
    }
}

impl ListenerOptions {
    /// The consumer settings these options ask of the bus. The bus's own delivery cap is
    /// raised to cover waiting out the gap horizon at the capped backoff (the runtime enforces
    /// `max_deliver` on retryable failures itself); it stays finite, so a message that kills
    /// the process each time it is handled still ends in the dead letters.
    pub fn subscribe_options(&self) -> SubscribeOptions {
        let step = self
            .gap_backoff
            .max
            .max(Duration::from_millis(1))
            .as_secs_f64();
        let waiting = (self.gap_horizon.as_secs_f64() / step).ceil().min(1e6) as u32;
        SubscribeOptions {
            ack_wait: self.ack_wait,
            max_deliver: self
                .max_deliver
                .max(1)
                .saturating_add(waiting)
                .saturating_add(64),
            max_ack_pending: self.max_ack_pending.max(1),
            prefetch: self.prefetch.max(1),
        }
    }
}

/// Exponential retry delay: `initial × multiplier^(attempt−1)`, capped at `max`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryBackoff {
    /// The delay after the first failed attempt. Default 25 ms: a version gap usually closes
    /// within milliseconds.
    pub initial: Duration,
    /// Growth per attempt. Default 2.
    pub multiplier: f64,
    /// The longest delay. Default 5 s.
    pub max: Duration,
}

impl Default for RetryBackoff {
    fn default() -> Self {
        RetryBackoff {
            initial: Duration::from_millis(25),
            multiplier: 2.0,
            max: Duration::from_secs(5),
        }
    }
}

impl RetryBackoff {
    /// The delay after failed attempt number `attempt` (1-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(64) as i32;
        let secs = self.initial.as_secs_f64() * self.multiplier.max(1.0).powi(exponent);
        if secs.is_finite() && secs < self.max.as_secs_f64() {
            Duration::from_secs_f64(secs)
        } else {
            self.max
        }
    }
}

/// What went wrong in a handler, and whether trying again can help.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandlerError {
    /// Transient: try again after the backoff (or `after`), dead-letter after the attempt
    /// budget. A version gap, a lost connection, a version conflict.
    #[error("{source}")]
    Retry {
        /// The cause.
        source: BoxError,
        /// A delay that overrides the backoff.
        after: Option<Duration>,
    },
    /// Waiting for an earlier event that is still on its way (the `Gap` of the versioned
    /// contract, or another record's change this one depends on): retried with the capped
    /// backoff for as long as the message is younger than the listener's
    /// [`gap_horizon`](ListenerOptions::gap_horizon), whatever the number of attempts.
    #[error("{source}")]
    Wait {
        /// What it waits for.
        source: BoxError,
    },
    /// Trying again cannot help: dead-letter at once.
    #[error("{source}")]
    Permanent {
        /// The cause.
        source: BoxError,
    },
}

impl HandlerError {
    /// A transient failure, retried after the backoff.
    pub fn retry(source: impl Into<BoxError>) -> Self {
        HandlerError::Retry {
            source: source.into(),
            after: None,
        }
    }

    /// A transient failure, retried no sooner than `after`.
    pub fn retry_after(source: impl Into<BoxError>, after: Duration) -> Self {
        HandlerError::Retry {
            source: source.into(),
            after: Some(after),
        }
    }

    /// A failure that retrying cannot fix.
    pub fn permanent(source: impl Into<BoxError>) -> Self {
        HandlerError::Permanent {
            source: source.into(),
        }
    }

    /// Waiting for an event still on its way; see [`HandlerError::Wait`].
    pub fn wait(source: impl Into<BoxError>) -> Self {
        HandlerError::Wait {
            source: source.into(),
        }
    }

    /// An earlier version of the record has not arrived yet (the `Gap` of the versioned
    /// contract): waits, up to the gap horizon.
    pub fn gap(record: impl fmt::Display, held: Option<u64>, event_version: u64) -> Self {
        let held = held.map_or_else(|| "nothing".to_owned(), |v| format!("version {v}"));
        HandlerError::wait(format!(
            "version gap on {record}: holds {held}, event is version {event_version}"
        ))
    }

    /// Whether the runtime would retry this failure.
    pub fn is_retryable(&self) -> bool {
        matches!(self, HandlerError::Retry { .. } | HandlerError::Wait { .. })
    }
}

impl From<BusError> for HandlerError {
    fn from(error: BusError) -> Self {
        HandlerError::retry(error)
    }
}

impl From<crate::publisher::PublishError> for HandlerError {
    fn from(error: crate::publisher::PublishError) -> Self {
        match error {
            crate::publisher::PublishError::Encode { .. } => HandlerError::permanent(error),
            _ => HandlerError::retry(error),
        }
    }
}

/// What a handler knows about the message it handles.
pub struct MessageContext<'a> {
    incoming: &'a pipeline::Incoming,
}

impl MessageContext<'_> {
    /// The subject.
    pub fn subject(&self) -> &str {
        self.incoming.subject()
    }

    /// The queue group.
    pub fn group(&self) -> &str {
        self.incoming.group()
    }

    /// 1 for the first delivery, higher for redeliveries.
    pub fn attempt(&self) -> u32 {
        self.incoming.attempt()
    }

    /// The sequence of the message in its subject's log.
    pub fn sequence(&self) -> u64 {
        self.incoming.sequence()
    }

    /// The message headers.
    pub fn headers(&self) -> &Headers {
        self.incoming.headers()
    }

    /// The event's message id, when the publisher set one.
    pub fn message_id(&self) -> Option<&str> {
        let headers = self.incoming.headers();
        headers
            .get(crate::envelope::ID)
            .or_else(|| headers.get(header::MESSAGE_ID))
            .map(String::as_str)
    }

    /// Tells the broker the handler is still working, restarting the ack-wait clock. Call it
    /// from handlers that may run longer than the ack wait.
    pub async fn progress(&self) -> Result<(), BusError> {
        self.incoming.progress().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        let b = RetryBackoff::default();
        assert_eq!(b.delay(1), Duration::from_millis(25));
        assert_eq!(b.delay(2), Duration::from_millis(50));
        assert_eq!(b.delay(4), Duration::from_millis(200));
        assert_eq!(b.delay(10), Duration::from_secs(5));
        assert_eq!(b.delay(u32::MAX), Duration::from_secs(5));
        assert_eq!(b.delay(0), Duration::from_millis(25));
    }

    #[test]
    fn gap_errors_are_retryable_and_say_what_is_missing() {
        let e = HandlerError::gap("ticket 1", Some(2), 5);
        assert!(e.is_retryable());
        assert_eq!(
            e.to_string(),
            "version gap on ticket 1: holds version 2, event is version 5"
        );
        assert!(!HandlerError::permanent("bad").is_retryable());
    }
}
