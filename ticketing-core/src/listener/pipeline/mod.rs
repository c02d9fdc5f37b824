//! The handling of one delivery as a [`tower::Service`], each cross-cutting step a
//! [`tower::Layer`].
//!
//! The runtime hands every delivery to a stack of services and settles the message by the
//! [`Settlement`] it answers. From the outside in:
//!
//! | step | layer | what it does |
//! |---|---|---|
//! | trace | [`TraceLayer`] | the publisher's trace (`traceparent`) continued, in a span per delivery when INFO spans are recorded |
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

mod guards;
mod observe;
mod settle;

pub use guards::{CatchPanic, CatchPanicLayer, Timeout, TimeoutLayer};
pub use observe::{Metrics, MetricsLayer, Trace, TraceLayer};
pub use settle::{Settle, SettleLayer};

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
    taken: Option<Instant>,
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
                taken: parts.taken,
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
            Settlement::Ack => match acker.try_ack() {
                Some(acked) => acked,
                None => acker.ack().await,
            },
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
// The stack.

/// The default stack around `inner` (the steps inside settle: yours, timeout, catch panic,
/// decode and handle): trace, metrics, settle.
pub(super) type Stack<L> = Trace<Metrics<Settle<Inside<L>>>>;

/// The steps inside settle without a user's layer: timeout, catch panic, decode and handle.
type Handler<L> = Timeout<CatchPanic<ListenerService<L>>>;

/// The steps inside settle: boxed into a [`Pipe`] when the user's layers wrap them, else as
/// they are (a listener without layers makes no allocation per delivery for the box).
pub(super) enum Inside<L> {
    /// Wrapped by the user's layers.
    Layered(Pipe),
    /// The default steps alone.
    Plain(Handler<L>),
}

impl<L: Listener> tower::Service<Incoming> for Inside<L> {
    type Response = ();
    type Error = HandlerError;
    type Future = futures::future::Either<
        <Pipe as tower::Service<Incoming>>::Future,
        <Handler<L> as tower::Service<Incoming>>::Future,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), HandlerError>> {
        match self {
            Inside::Layered(pipe) => pipe.poll_ready(cx),
            Inside::Plain(handler) => handler.poll_ready(cx),
        }
    }

    fn call(&mut self, incoming: Incoming) -> Self::Future {
        match self {
            Inside::Layered(pipe) => futures::future::Either::Left(pipe.call(incoming)),
            Inside::Plain(handler) => futures::future::Either::Right(handler.call(incoming)),
        }
    }
}

/// The pipeline of `listener` under `options`, with `layers` (outermost first) between the
/// settle step and the timeout.
pub(super) fn stack<L: Listener>(
    listener: Arc<L>,
    options: ListenerOptions,
    layers: &[PipeLayer],
) -> Stack<L> {
    let handler = tower::ServiceBuilder::new()
        .layer(TimeoutLayer(options.timeout))
        .layer(CatchPanicLayer)
        .service(ListenerService::new(listener));
    let inside = if layers.is_empty() {
        Inside::Plain(handler)
    } else {
        let mut pipe = Pipe::new(handler);
        for layer in layers.iter().rev() {
            pipe = layer(pipe);
        }
        Inside::Layered(pipe)
    };
    tower::ServiceBuilder::new()
        .layer(TraceLayer)
        .layer(MetricsLayer)
        .layer(SettleLayer::new(options))
        .service(inside)
}

/// A user's layer, boxed.
pub(super) type PipeLayer = Arc<dyn Fn(Pipe) -> Pipe + Send + Sync>;

/// Starts one delivery through `stack`, which must be ready ([`tower::Service::poll_ready`]),
/// and settles it when the handling is done; the future borrows nothing.
pub(super) fn handle<L: Listener>(
    stack: &mut Stack<L>,
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
