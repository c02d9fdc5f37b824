//! Request/reply over the bus, typed: a service asks another and waits for the answer
//! (NATS request/reply, MassTransit's request client).
//!
//! Requests are core messaging, not the stream: nothing is stored, each request reaches one
//! member of each responder group at most once, and a responder that is down when it is sent
//! never sees it. Use them for questions whose answer is only worth having now (a quote, a
//! lookup); what must happen even if nobody is listening is an event. The requester tells apart
//! [`RequestError::NoResponders`] (nobody answers the subject: at once) from
//! [`RequestError::TimedOut`] (somebody got it, no reply in time: the request may or may not
//! have been acted on).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use serde::{Deserialize, Serialize};
//! use ticketing_bus::memory::InMemoryBus;
//! use ticketing_core::request::{Request, Requester, spawn_responder};
//! use tokio_util::sync::CancellationToken;
//!
//! #[derive(Serialize, Deserialize)]
//! struct Quote { sku: String, quantity: u32 }
//! #[derive(Debug, PartialEq, Serialize, Deserialize)]
//! struct Price { cents: u64 }
//! impl Request for Quote {
//!     const SUBJECT: &'static str = "pricing:quote";
//!     type Reply = Price;
//! }
//!
//! let bus = InMemoryBus::new().as_dyn();
//! let token = CancellationToken::new();
//! let unit = 250_u64;
//! let responder = spawn_responder(&bus, "pricing-service", unit, |unit, quote: Quote| async move {
//!     Ok(Price { cents: unit * u64::from(quote.quantity) })
//! }, token.clone()).await?;
//!
//! let price = Requester::<Quote>::new(bus).request(&Quote { sku: "A-1".into(), quantity: 4 }).await?;
//! assert_eq!(price, Price { cents: 1000 });
//! responder.stop().await;
//! # Ok(()) }
//! ```

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::bus::{BoxError, Bus, BusError, IncomingRequest, OutgoingMessage, Reply, header};
use crate::task::Task;
use crate::trace::{TRACEPARENT, TraceContext};

/// The header of a reply that is a refusal: the responder's reason (the payload is empty).
pub const REFUSED: &str = "ticketing-refused";

/// A request a service answers: its subject and the type of its reply. Both travel as JSON.
pub trait Request: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The subject requests are sent on (requests and events have separate namespaces on
    /// every bus: a request subject never reaches a stream).
    const SUBJECT: &'static str;
    /// The answer.
    type Reply: Serialize + DeserializeOwned + Send + Sync + 'static;
}

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// No responder group answers the subject: the request reached nobody.
    #[error("no responder for {subject}")]
    NoResponders {
        /// The request's subject.
        subject: &'static str,
    },
    /// A responder may have received it, and did not reply in time.
    #[error("no reply to {subject} within {after:?}")]
    TimedOut {
        /// The request's subject.
        subject: &'static str,
        /// The timeout.
        after: Duration,
    },
    /// The responder answered with a refusal: its handler failed, or it could not decode the
    /// request.
    #[error("the responder of {subject} refused: {reason}")]
    Refused {
        /// The request's subject.
        subject: &'static str,
        /// The responder's reason.
        reason: String,
    },
    /// The request could not be encoded.
    #[error("could not encode the {subject} request: {source}")]
    Encode {
        /// The request's subject.
        subject: &'static str,
        /// The serde error.
        source: serde_json::Error,
    },
    /// The reply could not be decoded as the request's reply type.
    #[error("could not decode the reply to {subject}: {source}")]
    Decode {
        /// The request's subject.
        subject: &'static str,
        /// The serde error.
        source: serde_json::Error,
    },
    /// The bus failed.
    #[error("could not send the {subject} request: {source}")]
    Bus {
        /// The request's subject.
        subject: &'static str,
        /// The bus error.
        source: BusError,
    },
}

/// Sends `R` requests and waits for their replies, up to a timeout (5 s by default).
pub struct Requester<R> {
    bus: Arc<dyn Bus>,
    timeout: Duration,
    request: PhantomData<fn(R)>,
}

impl<R> Clone for Requester<R> {
    fn clone(&self) -> Self {
        Requester {
            bus: self.bus.clone(),
            timeout: self.timeout,
            request: PhantomData,
        }
    }
}

impl<R> fmt::Debug for Requester<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Requester")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl<R: Request> Requester<R> {
    /// A requester on `bus`, waiting 5 s for a reply.
    pub fn new(bus: Arc<dyn Bus>) -> Self {
        Requester {
            bus,
            timeout: Duration::from_secs(5),
            request: PhantomData,
        }
    }

    /// The same requester, waiting `timeout` for a reply.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sends `request` (continuing the current trace) and returns its reply.
    pub async fn request(&self, request: &R) -> Result<R::Reply, RequestError> {
        let subject = R::SUBJECT;
        let payload = serde_json::to_vec(request)
            .map_err(|source| RequestError::Encode { subject, source })?;
        let mut message = OutgoingMessage::new(subject, payload)
            .with_header(header::CONTENT_TYPE, "application/json");
        if let Some(parent) = TraceContext::for_outgoing() {
            message = message.with_header(TRACEPARENT, parent.header());
        }
        let reply = match self.bus.request(message, self.timeout).await {
            Ok(reply) => reply,
            Err(BusError::NoResponders(_)) => return Err(RequestError::NoResponders { subject }),
            Err(BusError::Timeout(_)) => {
                return Err(RequestError::TimedOut {
                    subject,
                    after: self.timeout,
                });
            }
            Err(source) => return Err(RequestError::Bus { subject, source }),
        };
        if let Some(reason) = reply.headers.get(REFUSED) {
            return Err(RequestError::Refused {
                subject,
                reason: reason.clone(),
            });
        }
        serde_json::from_slice(&reply.payload)
            .map_err(|source| RequestError::Decode { subject, source })
    }
}

/// A running responder: [`stop`](Self::stop) it, or cancel its token.
#[derive(Debug)]
pub struct ResponderHandle(Task);

impl ResponderHandle {
    /// Leaves the group and waits for the requests in hand to be answered.
    pub async fn stop(self) {
        self.0.stop("responder").await;
    }
}

/// How many requests one responder handles at a time.
const CONCURRENCY: usize = 64;

/// Answers `R` requests as a member of the responder group `group` until `token` is cancelled:
/// each request is decoded and handed to `handler` with a clone of `state` (up to 64 at a
/// time, in the request's trace); `Ok` is the reply, and an `Err` or an undecodable request is
/// a refusal, which the requester sees as [`RequestError::Refused`] with the reason. Several
/// members of one group share the requests; every group gets each one.
pub async fn spawn_responder<R, S, F, Fut>(
    bus: &Arc<dyn Bus>,
    group: &str,
    state: S,
    handler: F,
    token: CancellationToken,
) -> Result<ResponderHandle, BusError>
where
    R: Request,
    S: Clone + Send + Sync + 'static,
    F: Fn(S, R) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R::Reply, BoxError>> + Send + 'static,
{
    let mut responder = bus.respond(R::SUBJECT, group).await?;
    let handler = Arc::new(handler);
    let permits = Arc::new(Semaphore::new(CONCURRENCY));
    let stop = token.clone();
    let work = async move {
        loop {
            let request = tokio::select! {
                () = stop.cancelled() => break,
                request = responder.next() => request,
            };
            let Some(request) = request else { break };
            let Ok(permit) = permits.clone().acquire_owned().await else {
                break;
            };
            let (state, handler) = (state.clone(), handler.clone());
            tokio::spawn(async move {
                answer::<R, _, _, _>(request, state, &*handler).await;
                drop(permit);
            });
        }
        if let Err(error) = responder.close().await {
            tracing::warn!(subject = R::SUBJECT, %error, "closing a responder failed");
        }
        // The requests in hand are answered before `stop` returns.
        let _ = permits.acquire_many(CONCURRENCY as u32).await;
    };
    Ok(ResponderHandle(Task::spawn(token, work)))
}

/// Decodes, handles and answers one request.
async fn answer<R, S, F, Fut>(request: IncomingRequest, state: S, handler: &F)
where
    R: Request,
    F: Fn(S, R) -> Fut,
    Fut: Future<Output = Result<R::Reply, BoxError>>,
{
    let trace = request
        .headers()
        .get(TRACEPARENT)
        .and_then(|h| TraceContext::parse(h))
        .map_or_else(TraceContext::root, |parent| parent.child());
    let outcome = match serde_json::from_slice::<R>(request.payload()) {
        Ok(decoded) => crate::trace::scope(trace, handler(state, decoded))
            .await
            .map_err(|e| e.to_string())
            .and_then(|reply| {
                serde_json::to_vec(&reply).map_err(|e| format!("could not encode the reply: {e}"))
            }),
        Err(e) => Err(format!("could not decode the request: {e}")),
    };
    let reply = match outcome {
        Ok(payload) => Reply {
            payload: payload.into(),
            headers: [(
                header::CONTENT_TYPE.to_owned(),
                "application/json".to_owned(),
            )]
            .into(),
        },
        Err(reason) => {
            tracing::warn!(subject = R::SUBJECT, %reason, "request refused");
            Reply {
                payload: Default::default(),
                headers: [(REFUSED.to_owned(), reason)].into(),
            }
        }
    };
    if let Err(error) = request.reply(reply).await {
        tracing::warn!(subject = R::SUBJECT, %error, "a reply could not be sent");
    }
}
