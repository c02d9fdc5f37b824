//! The handling of one delivery as a [`tower::Service`], each cross-cutting step a
//! [`tower::Layer`].
//!
//! The runtime hands every delivery to a stack of services and settles the message by the
//! [`Settlement`] it answers. From the outside in:
//!
//! | step | layer | what it does |
//! |---|---|---|
//! | trace | [`TraceLayer`] | a span per delivery, continuing the publisher's trace (`traceparent`) |
//! | metrics | [`MetricsLayer`] | `ticketing_deliveries_total` and the handling time, by outcome |
//! | settle | [`SettleLayer`] | the decision: `Ok` acks; a wait, a retry or a dead letter by the [`ListenerOptions`] |
//! | *yours* | [`Router::layer`](super::Router::layer) | any `Layer` over `Service<Incoming, Response = (), Error = HandlerError>` |
//! | timeout | [`TimeoutLayer`] | [`ListenerOptions::timeout`]: a handler that takes longer is a retryable failure |
//! | catch panic | [`CatchPanicLayer`] | a panicking handler is a permanent failure; the listener goes on |
//! | decode and handle | [`ListenerService`] | the payload as the listener's event type (upcast if older), then the handler |
//!
//! The default stack behaves as the table of [`listener`](super) says. Your layers see each
//! delivery before it is decoded (its subject, headers, attempt) and answer with the
//! handler's result type, so a layer can refuse a message for good
//! (`HandlerError::permanent`: dead-lettered with the reason), ask for it again
//! (`HandlerError::retry`), or pass it on. A layer that dead-letters messages without a
//! tenant header:
//!
//! ```
//! use std::future::Future;
//! use std::pin::Pin;
//! use std::task::{Context, Poll};
//! use ticketing_core::HandlerError;
//! use ticketing_core::listener::pipeline::Incoming;
//!
//! /// Refuses a message without a `tenant` header.
//! #[derive(Clone)]
//! struct RequireTenant<S>(S);
//!
//! impl<S> tower::Service<Incoming> for RequireTenant<S>
//! where
//!     S: tower::Service<Incoming, Response = (), Error = HandlerError>,
//!     S::Future: Send + 'static,
//! {
//!     type Response = ();
//!     type Error = HandlerError;
//!     type Future = Pin<Box<dyn Future<Output = Result<(), HandlerError>> + Send>>;
//!
//!     fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), HandlerError>> {
//!         self.0.poll_ready(cx)
//!     }
//!
//!     fn call(&mut self, incoming: Incoming) -> Self::Future {
//!         if incoming.headers().contains_key("tenant") {
//!             Box::pin(self.0.call(incoming))
//!         } else {
//!             Box::pin(async { Err(HandlerError::permanent("no tenant header")) })
//!         }
//!     }
//! }
//!
//! let router = ticketing_core::listener::Router::new("billing")
//!     .layer(tower::layer::layer_fn(RequireTenant));
//! # let _ = router;
//! ```

use std::any::Any;
use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::FutureExt;
use tokio::time::Instant;
use tracing::Instrument;

use super::{HandlerError, Listener, ListenerOptions, MessageContext};
use crate::bus::{Acknowledger, BusError, Delivery, Headers, Message};
use crate::event::Events;
use crate::metrics::DeliveryOutcome;

/// A boxed future of the pipeline.
type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The part of the pipeline inside the settle step: what your layers wrap.
pub type Pipe = tower::util::BoxCloneSyncService<Incoming, (), HandlerError>;

/// One delivery as the pipeline sees it: the message, its group and attempt, when it was
/// published, and a handle to tell the broker the handler is still working.
pub struct Incoming {
    message: Arc<Message>,
    group: Arc<str>,
    attempt: u32,
    published: Option<Instant>,
    acker: Arc<dyn Acknowledger>,
    subject: &'static str,
    index: usize,
}

impl Incoming {
    /// The delivery of a message of one of `subjects` (a listener's), and what settles it.
    fn of(delivery: Delivery, subjects: &'static [&'static str]) -> (Self, Arc<dyn Acknowledger>) {
        let parts = delivery.into_parts();
        let (index, subject) = match subjects {
            [subject] => (0, *subject),
            subjects => subjects
                .iter()
                .enumerate()
                .find(|(_, s)| **s == parts.message.subject)
                .map_or((0, subjects[0]), |(i, s)| (i, *s)),
        };
        let acker = parts.acker.clone();
        (
            Incoming {
                message: parts.message,
                group: parts.group,
                attempt: parts.attempt,
                published: parts.published,
                acker: parts.acker,
                subject,
                index,
            },
            acker,
        )
    }

    /// The subject, as the listener names it.
    pub fn subject(&self) -> &'static str {
        self.subject
    }

    /// The message.
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// The payload.
    pub fn payload(&self) -> &[u8] {
        &self.message.payload
    }

    /// The headers.
    pub fn headers(&self) -> &Headers {
        &self.message.headers
    }

    /// The queue group.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// 1 for the first delivery, higher for redeliveries.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The sequence of the message (in its subject's log, or the stream).
    pub fn sequence(&self) -> u64 {
        self.message.sequence
    }

    /// How long ago the broker stored the message, if the backend says.
    pub fn age(&self) -> Option<Duration> {
        self.published
            .map(|at| Instant::now().saturating_duration_since(at))
    }

    /// Tells the broker the handler is still working, restarting the ack-wait clock.
    pub async fn progress(&self) -> Result<(), BusError> {
        self.acker.progress().await
    }

    /// What the handler is told of the message.
    pub fn context(&self) -> MessageContext<'_> {
        MessageContext { incoming: self }
    }

    /// The message among those of its listener: its subject's index and its sequence.
    fn key(&self) -> (usize, u64) {
        (self.index, self.message.sequence)
    }
}

impl std::fmt::Debug for Incoming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Incoming")
            .field("subject", &self.subject)
            .field("sequence", &self.message.sequence)
            .field("group", &self.group)
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}

/// How a delivery is settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    /// Done: ack.
    Ack,
    /// A retryable failure: nak, redelivered after the delay.
    Retry(Duration),
    /// Waiting for an earlier event: nak, redelivered after the delay.
    Wait(Duration),
    /// Dead-letter with the reason (`term`).
    DeadLetter(String),
}

impl Settlement {
    fn outcome(&self) -> DeliveryOutcome {
        match self {
            Settlement::Ack => DeliveryOutcome::Acked,
            Settlement::Retry(_) => DeliveryOutcome::Retried,
            Settlement::Wait(_) => DeliveryOutcome::Waited,
            Settlement::DeadLetter(_) => DeliveryOutcome::DeadLettered,
        }
    }

    /// Settles the delivery so.
    pub(super) async fn apply(self, acker: &dyn Acknowledger) {
        let settled = match self {
            Settlement::Ack => acker.ack().await,
            Settlement::Retry(delay) | Settlement::Wait(delay) => acker.nak(Some(delay)).await,
            Settlement::DeadLetter(reason) => acker.term(&reason).await,
        };
        if let Err(error) = settled {
            // The message stays unsettled: the broker redelivers it after the ack wait.
            tracing::warn!(%error, "settling a message failed; it will be redelivered");
        }
    }
}

// -------------------------------------------------------------------------------------------
// The innermost step: decode and handle.

/// Decodes the payload as the listener's event type and calls its handler.
pub struct ListenerService<L>(Arc<L>);

impl<L> ListenerService<L> {
    /// The service of `listener`.
    pub fn new(listener: Arc<L>) -> Self {
        ListenerService(listener)
    }
}

impl<L> Clone for ListenerService<L> {
    fn clone(&self) -> Self {
        ListenerService(self.0.clone())
    }
}

impl<L: Listener> tower::Service<Incoming> for ListenerService<L> {
    type Response = ();
    type Error = HandlerError;
    type Future = BoxFuture<Result<(), HandlerError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), HandlerError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, incoming: Incoming) -> Self::Future {
        let listener = self.0.clone();
        Box::pin(async move {
            let event = L::Event::decode(incoming.subject, incoming.payload(), incoming.headers())
                .map_err(|error| {
                    HandlerError::permanent(format!("undecodable payload: {error}"))
                })?;
            listener.on_message(event, &incoming.context()).await
        })
    }
}

// -------------------------------------------------------------------------------------------
// Catch panic.

/// A panicking handler is a permanent failure with the panic's message.
#[derive(Debug, Clone, Copy, Default)]
pub struct CatchPanicLayer;

impl<S> tower::Layer<S> for CatchPanicLayer {
    type Service = CatchPanic<S>;
    fn layer(&self, inner: S) -> CatchPanic<S> {
        CatchPanic(inner)
    }
}

/// See [`CatchPanicLayer`].
#[derive(Debug, Clone)]
pub struct CatchPanic<S>(S);

impl<S> tower::Service<Incoming> for CatchPanic<S>
where
    S: tower::Service<Incoming, Response = (), Error = HandlerError>,
{
    type Response = ();
    type Error = HandlerError;
    type Future = futures::future::Map<
        futures::future::CatchUnwind<AssertUnwindSafe<S::Future>>,
        fn(Result<Result<(), HandlerError>, Box<dyn Any + Send>>) -> Result<(), HandlerError>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), HandlerError>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, incoming: Incoming) -> Self::Future {
        AssertUnwindSafe(self.0.call(incoming))
            .catch_unwind()
            .map(|handled| {
                handled.unwrap_or_else(|panic| {
                    Err(HandlerError::permanent(format!(
                        "handler panicked: {}",
                        panic_message(&*panic)
                    )))
                })
            })
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

// -------------------------------------------------------------------------------------------
// Timeout.

/// A handler that takes longer than the limit is a retryable failure (none: no limit).
#[derive(Debug, Clone, Copy, Default)]
pub struct TimeoutLayer(pub Option<Duration>);

impl<S> tower::Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;
    fn layer(&self, inner: S) -> Timeout<S> {
        Timeout {
            inner,
            limit: self.0,
        }
    }
}

/// See [`TimeoutLayer`].
#[derive(Debug, Clone)]
pub struct Timeout<S> {
    inner: S,
    limit: Option<Duration>,
}

impl<S> tower::Service<Incoming> for Timeout<S>
where
    S: tower::Service<Incoming, Response = (), Error = HandlerError>,
{
    type Response = ();
    type Error = HandlerError;
    type Future = TimedOut<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), HandlerError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, incoming: Incoming) -> Self::Future {
        TimedOut {
            handled: self.inner.call(incoming),
            // Boxed: without a limit the future carries no timer, only a pointer.
            limit: self.limit.map(|limit| Box::pin(tokio::time::sleep(limit))),
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`Timeout`]: the handling, or a retry once the limit passed.
    pub struct TimedOut<F> {
        #[pin]
        handled: F,
        limit: Option<Pin<Box<tokio::time::Sleep>>>,
    }
}

impl<F: Future<Output = Result<(), HandlerError>>> Future for TimedOut<F> {
    type Output = Result<(), HandlerError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(handled) = this.handled.poll(cx) {
            return Poll::Ready(handled);
        }
        let timed_out = this
            .limit
            .as_mut()
            .is_some_and(|limit| limit.as_mut().poll(cx).is_ready());
        if timed_out {
            Poll::Ready(Err(HandlerError::retry("the handler timed out")))
        } else {
            Poll::Pending
        }
    }
}

// -------------------------------------------------------------------------------------------
// Settle: the decision.

/// Turns the handler's result into a [`Settlement`] by the listener's options: `Ok` acks; a
/// wait naks with the capped gap backoff until the message is older than the gap horizon; a
/// retry naks with the backoff until the member saw `max_deliver` failures; the rest
/// dead-letters, each with its reason logged.
#[derive(Clone)]
pub struct SettleLayer {
    policy: Arc<Policy>,
}

/// The options a [`Settle`] decides by and the tries it counted, shared by its futures (a
/// pointer in each, not a copy of the options).
struct Policy {
    options: ListenerOptions,
    tries: Tries,
}

impl SettleLayer {
    /// The decision under `options`, counting the tries of this listener's messages.
    pub fn new(options: ListenerOptions) -> Self {
        SettleLayer {
            policy: Arc::new(Policy {
                options,
                tries: Tries::default(),
            }),
        }
    }
}

impl<S> tower::Layer<S> for SettleLayer {
    type Service = Settle<S>;
    fn layer(&self, inner: S) -> Settle<S> {
        Settle {
            inner,
            policy: self.policy.clone(),
        }
    }
}

/// See [`SettleLayer`].
#[derive(Clone)]
pub struct Settle<S> {
    inner: S,
    policy: Arc<Policy>,
}

/// The longest pause between two tries of an event that has waited for long.
const LONG_WAIT_RETRY: Duration = Duration::from_secs(60);

impl<S> tower::Service<Incoming> for Settle<S>
where
    S: tower::Service<Incoming, Response = (), Error = HandlerError>,
{
    type Response = Settlement;
    type Error = Infallible;
    type Future = Settling<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // A step that cannot take the message now is waited for; one that failed is the
        // message's failure, decided at `call`.
        match self.inner.poll_ready(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(_) => Poll::Ready(Ok(())),
        }
    }

    fn call(&mut self, incoming: Incoming) -> Self::Future {
        let (key, published) = (incoming.key(), incoming.published);
        Settling {
            handled: self.inner.call(incoming),
            key,
            published,
            policy: self.policy.clone(),
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`Settle`]: the handling, then the decision.
    pub struct Settling<F> {
        #[pin]
        handled: F,
        key: (usize, u64),
        published: Option<Instant>,
        policy: Arc<Policy>,
    }
}

impl<F: Future<Output = Result<(), HandlerError>>> Future for Settling<F> {
    type Output = Result<Settlement, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let outcome = std::task::ready!(this.handled.poll(cx));
        Poll::Ready(Ok(decide(
            outcome,
            *this.key,
            *this.published,
            &this.policy.options,
            &this.policy.tries,
        )))
    }
}

fn decide(
    outcome: Result<(), HandlerError>,
    key: (usize, u64),
    published: Option<Instant>,
    options: &ListenerOptions,
    tries: &Tries,
) -> Settlement {
    if !matches!(
        outcome,
        Err(HandlerError::Wait { .. } | HandlerError::Retry { .. })
    ) {
        tries.forget(key);
    }
    let dead = |reason: String| {
        tracing::error!(%reason, "dead-lettering message");
        Settlement::DeadLetter(reason)
    };
    match outcome {
        Ok(()) => Settlement::Ack,
        // How long ago the broker stored it: read the clock only for a wait.
        Err(HandlerError::Wait { source }) => {
            match published.map(|at| Instant::now().saturating_duration_since(at)) {
                Some(age) if age >= options.gap_horizon => {
                    tries.forget(key);
                    dead(format!(
                        "waited {}s, past the gap horizon of {}s: {source}",
                        age.as_secs(),
                        options.gap_horizon.as_secs()
                    ))
                }
                age => {
                    let waited = tries.wait(key);
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
                    Settlement::Wait(delay)
                }
            }
        }
        Err(HandlerError::Retry { source, after }) => {
            // The failures this member saw: waits, and deliveries lost to a crash or handled
            // elsewhere, do not count against the budget.
            let attempt = tries.retry(key);
            if attempt >= options.max_deliver {
                tries.forget(key);
                dead(format!("gave up after {attempt} attempts: {source}"))
            } else {
                let delay = after.unwrap_or_else(|| options.backoff.delay(attempt));
                // A first retry is routine (a version gap, a conflict); repeated ones are not.
                if attempt == 1 {
                    tracing::debug!(error = %source, ?delay, "handler failed; will retry");
                } else {
                    tracing::warn!(error = %source, ?delay, "handler failed again; will retry");
                }
                Settlement::Retry(delay)
            }
        }
        Err(HandlerError::Permanent { source }) => dead(format!("permanent failure: {source}")),
    }
}

/// How often this member answered each message with [`HandlerError::Wait`] and with
/// [`HandlerError::Retry`]: waits back off by their own count and never use up the attempt
/// budget, and the budget counts the failures this member saw, not the broker's deliveries
/// (those include waits answered by another member or before a restart, and deliveries cut
/// short by a crash, none of which is a failure of the message).
#[derive(Default)]
struct Tries {
    counts: std::sync::Mutex<std::collections::HashMap<(usize, u64), TryCount>>,
    /// Whether `counts` may hold anything: most deliveries succeed at once, and forgetting
    /// then takes no lock.
    any: std::sync::atomic::AtomicBool,
}

#[derive(Default, Clone, Copy)]
struct TryCount {
    waits: u32,
    retries: u32,
}

impl Tries {
    /// Entries kept at most; past it the counts start over (a wait then backs off from the
    /// start again, and a failing message gets a fuller budget: both harmless).
    const LIMIT: usize = 100_000;

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<(usize, u64), TryCount>> {
        self.counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn record(&self, key: (usize, u64), update: impl FnOnce(&mut TryCount)) -> TryCount {
        let mut counts = self.lock();
        if counts.len() >= Self::LIMIT && !counts.contains_key(&key) {
            counts.clear();
        }
        let count = counts.entry(key).or_default();
        update(count);
        self.any.store(true, std::sync::atomic::Ordering::Release);
        *count
    }

    fn wait(&self, key: (usize, u64)) -> u32 {
        self.record(key, |c| c.waits = c.waits.saturating_add(1))
            .waits
    }

    fn retry(&self, key: (usize, u64)) -> u32 {
        self.record(key, |c| c.retries = c.retries.saturating_add(1))
            .retries
    }

    fn forget(&self, key: (usize, u64)) {
        if !self.any.load(std::sync::atomic::Ordering::Acquire) {
            return;
        }
        let mut counts = self.lock();
        counts.remove(&key);
        if counts.is_empty() {
            self.any.store(false, std::sync::atomic::Ordering::Release);
        }
    }
}

// -------------------------------------------------------------------------------------------
// Metrics.

/// Counts each delivery by subject, group and outcome, with its handling time, and records the
/// first delivery's lag behind the event's making.
#[derive(Debug, Clone, Copy, Default)]
pub struct MetricsLayer;

impl<S> tower::Layer<S> for MetricsLayer {
    type Service = Metrics<S>;
    fn layer(&self, inner: S) -> Metrics<S> {
        Metrics {
            inner,
            registered: Vec::new(),
        }
    }
}

/// See [`MetricsLayer`].
#[derive(Debug, Clone)]
pub struct Metrics<S> {
    inner: S,
    /// The metrics of each subject seen, registered at its first delivery.
    registered: Vec<(&'static str, Arc<crate::metrics::DeliveryMetrics>)>,
}

impl<S> tower::Service<Incoming> for Metrics<S>
where
    S: tower::Service<Incoming, Response = Settlement, Error = Infallible>,
{
    type Response = Settlement;
    type Error = Infallible;
    type Future = Measured<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, incoming: Incoming) -> Self::Future {
        let metrics = match self
            .registered
            .iter()
            .find(|(subject, _)| *subject == incoming.subject)
        {
            Some((_, metrics)) => metrics.clone(),
            None => {
                let metrics = Arc::new(crate::metrics::DeliveryMetrics::register(
                    incoming.subject,
                    &incoming.group,
                ));
                self.registered.push((incoming.subject, metrics.clone()));
                metrics
            }
        };
        if incoming.attempt == 1 {
            if let Some(lag) = crate::metrics::age(&incoming.message.headers) {
                metrics.record_lag(lag);
            }
        }
        Measured {
            settled: self.inner.call(incoming),
            metrics,
            started: Instant::now(),
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`Metrics`]: the settlement, counted with its handling time.
    pub struct Measured<F> {
        #[pin]
        settled: F,
        metrics: Arc<crate::metrics::DeliveryMetrics>,
        started: Instant,
    }
}

impl<F: Future<Output = Result<Settlement, Infallible>>> Future for Measured<F> {
    type Output = Result<Settlement, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let settled = std::task::ready!(this.settled.poll(cx));
        if let Ok(settlement) = &settled {
            this.metrics
                .record(settlement.outcome(), this.started.elapsed());
        }
        Poll::Ready(settled)
    }
}

// -------------------------------------------------------------------------------------------
// Trace.

/// A span per delivery (subject, group, sequence, attempt, trace id), in the trace the
/// publisher's `traceparent` names (a new one when it names none).
#[derive(Debug, Clone, Copy, Default)]
pub struct TraceLayer;

impl<S> tower::Layer<S> for TraceLayer {
    type Service = Trace<S>;
    fn layer(&self, inner: S) -> Trace<S> {
        Trace(inner)
    }
}

/// See [`TraceLayer`].
#[derive(Debug, Clone)]
pub struct Trace<S>(S);

impl<S> tower::Service<Incoming> for Trace<S>
where
    S: tower::Service<Incoming, Response = Settlement, Error = Infallible>,
{
    type Response = Settlement;
    type Error = Infallible;
    type Future = crate::trace::Scoped<tracing::instrument::Instrumented<S::Future>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, incoming: Incoming) -> Self::Future {
        let parent = incoming
            .headers()
            .get(crate::trace::TRACEPARENT)
            .and_then(|h| crate::trace::TraceContext::parse(h));
        let trace = parent.map_or_else(crate::trace::TraceContext::root, |parent| parent.child());
        let span = tracing::info_span!(
            "message",
            subject = incoming.subject,
            group = incoming.group(),
            sequence = incoming.sequence(),
            attempt = incoming.attempt(),
            trace_id = tracing::field::Empty,
        );
        if let Some(parent) = &parent {
            crate::trace::adopt(&span, parent);
        }
        if !span.is_disabled() {
            span.record("trace_id", crate::trace::trace_id_of(&span, &trace));
        }
        // The handler's events continue this trace.
        let settled = span.in_scope(|| self.0.call(incoming));
        crate::trace::scoped(trace, settled.instrument(span))
    }
}

// -------------------------------------------------------------------------------------------
// The stack.

/// The default stack around `inner` (the steps inside settle: yours, timeout, catch panic,
/// decode and handle): trace, metrics, settle.
pub(super) type Stack = Trace<Metrics<Settle<Pipe>>>;

/// The pipeline of `listener` under `options`, with `layers` (outermost first) between the
/// settle step and the timeout.
pub(super) fn stack<L: Listener>(
    listener: Arc<L>,
    options: ListenerOptions,
    layers: &[PipeLayer],
) -> Stack {
    let handler = tower::ServiceBuilder::new()
        .layer(TimeoutLayer(options.timeout))
        .layer(CatchPanicLayer)
        .service(ListenerService::new(listener));
    let mut pipe = Pipe::new(handler);
    for layer in layers.iter().rev() {
        pipe = layer(pipe);
    }
    tower::ServiceBuilder::new()
        .layer(TraceLayer)
        .layer(MetricsLayer)
        .layer(SettleLayer::new(options))
        .service(pipe)
}

/// A user's layer, boxed.
pub(super) type PipeLayer = Arc<dyn Fn(Pipe) -> Pipe + Send + Sync>;

/// Starts one delivery through `stack`, which must be ready ([`tower::Service::poll_ready`]),
/// and settles it when the handling is done; the future borrows nothing.
pub(super) fn handle(
    stack: &mut Stack,
    delivery: Delivery,
    subjects: &'static [&'static str],
) -> impl Future<Output = ()> + Send + 'static {
    use tower::Service;
    let (incoming, acker) = Incoming::of(delivery, subjects);
    let settled = stack.call(incoming);
    async move {
        let Ok(settlement) = settled.await;
        settlement.apply(&*acker).await;
    }
}
