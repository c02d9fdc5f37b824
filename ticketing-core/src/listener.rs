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

use std::any::Any;
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::bus::{BoxError, Bus, BusError, Delivery, Headers, SubscribeOptions, header};
use crate::event::Event;
use crate::metrics::DeliveryOutcome;

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
    /// The event this listener consumes; its subject is `Self::Event::SUBJECT`.
    type Event: Event;

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
    delivery: &'a Delivery,
}

impl MessageContext<'_> {
    /// The subject.
    pub fn subject(&self) -> &str {
        self.delivery.subject()
    }

    /// The queue group.
    pub fn group(&self) -> &str {
        self.delivery.group()
    }

    /// 1 for the first delivery, higher for redeliveries.
    pub fn attempt(&self) -> u32 {
        self.delivery.attempt()
    }

    /// The sequence of the message in its subject's log.
    pub fn sequence(&self) -> u64 {
        self.delivery.sequence()
    }

    /// The message headers.
    pub fn headers(&self) -> &Headers {
        self.delivery.headers()
    }

    /// The event's message id, when the publisher set one.
    pub fn message_id(&self) -> Option<&str> {
        self.delivery
            .headers()
            .get(header::MESSAGE_ID)
            .map(String::as_str)
    }

    /// Tells the broker the handler is still working, restarting the ack-wait clock. Call it
    /// from handlers that may run longer than the ack wait.
    pub async fn progress(&self) -> Result<(), BusError> {
        self.delivery.progress().await
    }
}

/// A running listener. [`stop`](Self::stop) it for a graceful shutdown; dropping the handle
/// leaves it running until its cancellation token is cancelled.
#[derive(Debug)]
pub struct ListenerHandle {
    subject: &'static str,
    group: String,
    token: CancellationToken,
    task: JoinHandle<()>,
}

impl ListenerHandle {
    /// The subject listened to.
    pub fn subject(&self) -> &'static str {
        self.subject
    }

    /// The queue group.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// Whether the listener stopped (cancelled, or the bus closed).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Graceful stop: take no new messages, leave the group, finish and settle the in-flight
    /// ones, then return. Nothing handled is left unacked and nothing acked is unhandled.
    pub async fn stop(self) {
        self.token.cancel();
        if let Err(error) = self.task.await {
            tracing::error!(%error, group = %self.group, "listener task failed");
        }
    }

    /// Waits until the listener stops by itself or through its token.
    pub async fn join(self) {
        if let Err(error) = self.task.await {
            tracing::error!(%error, group = %self.group, "listener task failed");
        }
    }
}

/// Subscribes `listener` to `bus` and runs it on a new task until `stop`.
///
/// The queue group exists once this returns, so every message published afterwards reaches it.
pub async fn spawn_listener<L: Listener>(
    bus: &Arc<dyn Bus>,
    listener: impl Into<Arc<L>>,
) -> Result<ListenerHandle, BusError> {
    spawn_listener_with_token(bus, listener, CancellationToken::new()).await
}

/// As [`spawn_listener`], stopping when `token` is cancelled (a service's shutdown token, or
/// a child of it).
pub async fn spawn_listener_with_token<L: Listener>(
    bus: &Arc<dyn Bus>,
    listener: impl Into<Arc<L>>,
    token: CancellationToken,
) -> Result<ListenerHandle, BusError> {
    let listener: Arc<L> = listener.into();
    let options = listener.options();
    let group = listener.queue_group().to_owned();
    let subscription = bus
        .subscribe(L::Event::SUBJECT, &group, options.subscribe_options())
        .await?;
    let task = tokio::spawn(run(listener, subscription, options, token.clone()));
    Ok(ListenerHandle {
        subject: L::Event::SUBJECT,
        group,
        token,
        task,
    })
}

async fn run<L: Listener>(
    listener: Arc<L>,
    mut subscription: Box<dyn crate::bus::Subscription>,
    options: ListenerOptions,
    token: CancellationToken,
) {
    let concurrency = options.concurrency.max(1);
    let tries = Tries::default();
    let mut in_flight = FuturesUnordered::new();
    let mut failures = 0u32;
    // After a subscription error: no new messages until then, while the handlers already in
    // flight keep running (they hold connections and ack deadlines).
    let mut resume_at: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            biased;
            _ = token.cancelled() => break,
            Some(()) = in_flight.next(), if !in_flight.is_empty() => {}
            () = tokio::time::sleep_until(resume_at.unwrap_or_else(tokio::time::Instant::now)), if resume_at.is_some() => {
                resume_at = None;
            }
            next = subscription.next(), if resume_at.is_none() && in_flight.len() < concurrency => match next {
                // One at a time: handle it here, without the bookkeeping of a set of futures.
                Some(Ok(delivery)) if concurrency == 1 => {
                    failures = 0;
                    handle(&*listener, delivery, &options, &tries).await;
                }
                Some(Ok(delivery)) => {
                    failures = 0;
                    in_flight.push(handle(&*listener, delivery, &options, &tries));
                }
                Some(Err(error)) => {
                    failures = failures.saturating_add(1);
                    let pause = options.backoff.delay(failures);
                    tracing::warn!(%error, group = listener.queue_group(), ?pause, "subscription failed; retrying");
                    resume_at = Some(tokio::time::Instant::now() + pause);
                }
                None => {
                    tracing::info!(group = listener.queue_group(), subject = L::Event::SUBJECT, "subscription closed");
                    break;
                }
            },
        }
    }
    if let Err(error) = subscription.close().await {
        tracing::warn!(%error, group = listener.queue_group(), "closing the subscription failed");
    }
    while in_flight.next().await.is_some() {}
}

/// The longest pause between two tries of an event that has waited for long.
const LONG_WAIT_RETRY: Duration = Duration::from_secs(60);

/// How often this member answered each message (by sequence) with [`HandlerError::Wait`] and
/// with [`HandlerError::Retry`]: waits back off by their own count and never use up the
/// attempt budget, and the budget counts the failures this member saw, not the broker's
/// deliveries (those include waits answered by another member or before a restart, and
/// deliveries cut short by a crash, none of which is a failure of the message).
#[derive(Default)]
struct Tries(std::sync::Mutex<std::collections::HashMap<u64, TryCount>>);

#[derive(Default, Clone, Copy)]
struct TryCount {
    waits: u32,
    retries: u32,
}

impl Tries {
    /// Entries kept at most; past it the counts start over (a wait then backs off from the
    /// start again, and a failing message gets a fuller budget: both harmless).
    const LIMIT: usize = 100_000;

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<u64, TryCount>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts one more try of `sequence`; returns the counts so far.
    fn record(&self, sequence: u64, update: impl FnOnce(&mut TryCount)) -> TryCount {
        let mut counts = self.lock();
        if counts.len() >= Self::LIMIT && !counts.contains_key(&sequence) {
            counts.clear();
        }
        let count = counts.entry(sequence).or_default();
        update(count);
        *count
    }

    /// Counts one more wait of `sequence`; returns how many so far.
    fn wait(&self, sequence: u64) -> u32 {
        self.record(sequence, |c| c.waits = c.waits.saturating_add(1))
            .waits
    }

    /// Counts one more retryable failure of `sequence`; returns how many so far.
    fn retry(&self, sequence: u64) -> u32 {
        self.record(sequence, |c| c.retries = c.retries.saturating_add(1))
            .retries
    }

    fn forget(&self, sequence: u64) {
        self.lock().remove(&sequence);
    }
}

async fn handle<L: Listener>(
    listener: &L,
    delivery: Delivery,
    options: &ListenerOptions,
    tries: &Tries,
) {
    // The trace of the publisher goes on here (a new one when the message carries none).
    let parent = delivery
        .headers()
        .get(crate::trace::TRACEPARENT)
        .and_then(|h| crate::trace::TraceContext::parse(h));
    let trace = parent.map_or_else(crate::trace::TraceContext::root, |parent| parent.child());
    let span = tracing::info_span!(
        "message",
        subject = delivery.subject(),
        group = delivery.group(),
        sequence = delivery.sequence(),
        attempt = delivery.attempt(),
        trace_id = tracing::field::Empty,
    );
    if let Some(parent) = &parent {
        crate::trace::adopt(&span, parent);
    }
    span.record("trace_id", crate::trace::trace_id_of(&span, &trace));
    let started = tokio::time::Instant::now();
    let group = listener.queue_group();
    let measured = |outcome| {
        crate::metrics::delivery(L::Event::SUBJECT, group, outcome, started.elapsed());
    };
    let handled = async move {
        let event = match serde_json::from_slice::<L::Event>(delivery.payload()) {
            Ok(event) => event,
            Err(error) => {
                let reason = format!("undecodable payload: {error}");
                tracing::error!(%reason, "dead-lettering message");
                settle(delivery.term(&reason).await);
                measured(DeliveryOutcome::DeadLettered);
                return;
            }
        };
        let outcome = {
            let ctx = MessageContext {
                delivery: &delivery,
            };
            AssertUnwindSafe(listener.on_message(event, &ctx))
                .catch_unwind()
                .await
        };
        let sequence = delivery.sequence();
        if !matches!(
            outcome,
            Ok(Err(HandlerError::Wait { .. } | HandlerError::Retry { .. }))
        ) {
            tries.forget(sequence);
        }
        match outcome {
            Ok(Ok(())) => {
                settle(delivery.ack().await);
                measured(DeliveryOutcome::Acked);
            }
            Ok(Err(HandlerError::Wait { source })) => match delivery.age() {
                Some(age) if age >= options.gap_horizon => {
                    tries.forget(sequence);
                    let reason = format!(
                        "waited {}s, past the gap horizon of {}s: {source}",
                        age.as_secs(),
                        options.gap_horizon.as_secs()
                    );
                    tracing::error!(%reason, "dead-lettering message");
                    settle(delivery.term(&reason).await);
                    measured(DeliveryOutcome::DeadLettered);
                }
                age => {
                    let waited = tries.wait(sequence);
                    let delay = options
                        .gap_backoff
                        .delay(waited)
                        .max(age.map_or(Duration::ZERO, |age| (age / 20).min(LONG_WAIT_RETRY)));
                    // Waiting is routine; say so now and then, not on every retry.
                    if waited.is_power_of_two() && waited >= 64 {
                        tracing::info!(reason = %source, waited, ?age, ?delay, "still waiting");
                    } else {
                        tracing::debug!(reason = %source, waited, ?delay, "waiting");
                    }
                    settle(delivery.nak(Some(delay)).await);
                    measured(DeliveryOutcome::Waited);
                }
            },
            Ok(Err(HandlerError::Retry { source, after })) => {
                // The failures this member saw: waits, and deliveries lost to a crash or
                // handled elsewhere, do not count against the budget.
                let attempt = tries.retry(sequence);
                if attempt >= options.max_deliver {
                    tries.forget(sequence);
                    let reason = format!("gave up after {attempt} attempts: {source}");
                    tracing::error!(%reason, "dead-lettering message");
                    settle(delivery.term(&reason).await);
                    measured(DeliveryOutcome::DeadLettered);
                } else {
                    let delay = after.unwrap_or_else(|| options.backoff.delay(attempt));
                    // A first retry is routine (a version gap, a conflict); repeated ones are not.
                    if attempt == 1 {
                        tracing::debug!(error = %source, ?delay, "handler failed; will retry");
                    } else {
                        tracing::warn!(error = %source, ?delay, "handler failed again; will retry");
                    }
                    settle(delivery.nak(Some(delay)).await);
                    measured(DeliveryOutcome::Retried);
                }
            }
            Ok(Err(HandlerError::Permanent { source })) => {
                let reason = format!("permanent failure: {source}");
                tracing::error!(%reason, "dead-lettering message");
                settle(delivery.term(&reason).await);
                measured(DeliveryOutcome::DeadLettered);
            }
            Err(panic) => {
                let reason = format!("handler panicked: {}", panic_message(&*panic));
                tracing::error!(%reason, "dead-lettering message");
                settle(delivery.term(&reason).await);
                measured(DeliveryOutcome::DeadLettered);
            }
        }
    }
    .instrument(span);
    crate::trace::scope(trace, handled).await
}

fn settle(result: Result<(), BusError>) {
    if let Err(error) = result {
        // The message stays unsettled: the broker redelivers it after the ack wait.
        tracing::warn!(%error, "settling a message failed; it will be redelivered");
    }
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
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
