//! Requests, replies and signals: core messaging beside the streams.

#[allow(clippy::wildcard_imports)]
use super::*;

/// The signals of one subject ([`Bus::signals`]): each payload as it comes.
pub type Signals = futures::stream::BoxStream<'static, Bytes>;

/// The reply to a request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reply {
    /// Its payload.
    pub payload: Bytes,
    /// Its headers.
    pub headers: Headers,
}

/// Sends the reply to one request; implemented by each backend. [`IncomingRequest`] wraps it.
#[async_trait]
pub trait Replier: Send + Sync {
    /// Sends `reply` to the requester (who may have stopped waiting: then it is lost).
    async fn reply(self: Box<Self>, reply: Reply) -> Result<(), BusError>;
}

/// One request received by one member of a responder group. Answer it once with
/// [`reply`](Self::reply); a request dropped unanswered times out at its requester.
pub struct IncomingRequest {
    subject: String,
    payload: Bytes,
    headers: Headers,
    replier: Box<dyn Replier>,
}

impl IncomingRequest {
    /// Builds a request; for backend implementations.
    pub fn new(
        subject: impl Into<String>,
        payload: Bytes,
        headers: Headers,
        replier: Box<dyn Replier>,
    ) -> Self {
        IncomingRequest {
            subject: subject.into(),
            payload,
            headers,
            replier,
        }
    }

    /// The subject it was sent on.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// Its payload.
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// Its headers.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// Answers it.
    pub async fn reply(self, reply: Reply) -> Result<(), BusError> {
        self.replier.reply(reply).await
    }
}

impl fmt::Debug for IncomingRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IncomingRequest")
            .field("subject", &self.subject)
            .field("payload_len", &self.payload.len())
            .finish_non_exhaustive()
    }
}

/// One member of a responder group.
#[async_trait]
pub trait Responder: Send {
    /// The next request for this member. `None` once the bus is closed. Cancel-safe.
    async fn next(&mut self) -> Option<IncomingRequest>;

    /// Leaves the group: requests sent after it go to the other members, or find no responder.
    async fn close(self: Box<Self>) -> Result<(), BusError>;
}
