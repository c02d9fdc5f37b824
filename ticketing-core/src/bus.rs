//! The transport interface a backend implements.
//!
//! # Contract
//!
//! Every backend gives the JetStream model, and the bus conformance suite
//! (`conformance::bus`, feature `conformance`) checks it:
//!
//! - **Publish confirms.** [`Bus::publish`] returns only once the broker stored the message. A
//!   message whose [`message_id`](OutgoingMessage::message_id) was already published inside the
//!   de-duplication window is not stored again; the ack says
//!   [`duplicate`](PublishAck::duplicate).
//! - **Durable queue groups.** [`Bus::subscribe`] joins the consumer named by the queue group on
//!   one subject, creating it on first use. Every group gets every message of its subject;
//!   within a group, each message goes to one member at a time. A new group starts from the
//!   first retained message; a member that joins later resumes where the group left off.
//! - **At-least-once with explicit settlement.** Each [`Delivery`] must be settled:
//!   [`ack`](Delivery::ack) — done, never redelivered; [`nak`](Delivery::nak) — redeliver, no
//!   sooner than the delay; [`term`](Delivery::term) — never redeliver, dead-letter with the
//!   reason; [`progress`](Delivery::progress) — still working, restart the ack-wait clock.
//!   A delivery not settled within `ack_wait` is redelivered to any member, its
//!   [`attempt`](Delivery::attempt) one higher. A message that has been delivered
//!   `max_deliver` times without an ack is dead-lettered by the bus.
//! - **Flow control.** At most `max_ack_pending` messages of a group are unacknowledged at a
//!   time; past that the group receives only redeliveries until something is acked.
//! - **Per-key order, opt-in.** [`Bus::subscribe_ordered`] joins a group that delivers the
//!   messages of one ordering key ([`partition`](crate::partition)) in publish order, one at a
//!   time, while keys in other partitions run in parallel.
//! - **Dead letters** keep the message with its reason, subject, group and attempts;
//!   [`Bus::redrive`] delivers one again to its group alone.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;

/// Message headers: names to values.
pub type Headers = BTreeMap<String, String>;

/// A boxed error, for backend sources.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Header names the SDK sets.
pub mod header {
    /// The de-duplication id (the event's message id) on events published before the
    /// envelope, which carries it as `ce-id` ([`crate::envelope::ID`]); still read.
    pub const MESSAGE_ID: &str = "ticketing-msg-id";
    /// `application/json`: on requests and replies; on events published before the envelope,
    /// which carries it as `ce-datacontenttype`.
    pub const CONTENT_TYPE: &str = "content-type";
}

/// A message to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    /// The subject, such as `ticket:created`.
    pub subject: String,
    /// The payload bytes (JSON for events).
    pub payload: Bytes,
    /// Headers, delivered unchanged.
    pub headers: Headers,
    /// The de-duplication id: a second publish with the same id inside the bus's window is
    /// acknowledged as a duplicate and not stored.
    pub message_id: Option<String>,
}

impl OutgoingMessage {
    /// A message without headers or message id.
    pub fn new(subject: impl Into<String>, payload: impl Into<Bytes>) -> Self {
        OutgoingMessage {
            subject: subject.into(),
            payload: payload.into(),
            headers: Headers::new(),
            message_id: None,
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }

    /// Sets the de-duplication id.
    pub fn with_message_id(mut self, id: impl Into<String>) -> Self {
        self.message_id = Some(id.into());
        self
    }
}

/// The broker's confirmation of a publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishAck {
    /// The sequence the message is stored under (the earlier copy's, for a duplicate).
    pub sequence: u64,
    /// The message id was seen inside the de-duplication window; nothing new was stored.
    pub duplicate: bool,
}

/// Consumer settings, fixed per queue group (the latest member's settings apply).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscribeOptions {
    /// How long a delivery may stay unsettled before it is redelivered. Default 5 s.
    pub ack_wait: Duration,
    /// How many times a message is delivered at most; then it is dead-lettered. Default 10.
    pub max_deliver: u32,
    /// How many messages of the group may be unacknowledged at once. Default 1000.
    pub max_ack_pending: usize,
    /// How many messages a member of a pulling backend (NATS) fetches ahead of `next`. Each runs
    /// its ack-wait clock while it waits, so keep `prefetch` × handling time well under
    /// `ack_wait`. Backends that hand out one message per `next` (in-memory) ignore it.
    /// Default 16.
    pub prefetch: usize,
}

impl Default for SubscribeOptions {
    fn default() -> Self {
        SubscribeOptions {
            ack_wait: Duration::from_secs(5),
            max_deliver: 10,
            max_ack_pending: 1000,
            prefetch: 16,
        }
    }
}

/// A message as stored by the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Its subject.
    pub subject: String,
    /// Its payload.
    pub payload: Bytes,
    /// Its headers.
    pub headers: Headers,
    /// Its sequence in the subject's log.
    pub sequence: u64,
}

/// Settles one delivery; implemented by each backend. [`Delivery`] wraps it.
#[async_trait]
pub trait Acknowledger: Send + Sync {
    /// Done: never redeliver.
    async fn ack(&self) -> Result<(), BusError>;
    /// Redeliver, no sooner than `delay` (at once for `None`).
    async fn nak(&self, delay: Option<Duration>) -> Result<(), BusError>;
    /// Never redeliver; dead-letter with `reason`.
    async fn term(&self, reason: &str) -> Result<(), BusError>;
    /// Still working: restart the ack-wait clock.
    async fn progress(&self) -> Result<(), BusError>;
}

/// One delivery of a message to one member of a queue group. It must be settled once with
/// [`ack`](Self::ack), [`nak`](Self::nak) or [`term`](Self::term); a delivery dropped unsettled
/// is redelivered after the ack wait.
pub struct Delivery {
    message: Arc<Message>,
    group: Arc<str>,
    attempt: u32,
    published: Option<tokio::time::Instant>,
    acker: Arc<dyn Acknowledger>,
}

/// A delivery taken apart: the message, its group, attempt and publish time, and what settles
/// it (for the listener pipeline).
pub(crate) struct DeliveryParts {
    pub(crate) message: Arc<Message>,
    pub(crate) group: Arc<str>,
    pub(crate) attempt: u32,
    pub(crate) published: Option<tokio::time::Instant>,
    pub(crate) acker: Arc<dyn Acknowledger>,
}

impl Delivery {
    /// Builds a delivery; for backend implementations.
    pub fn new(
        message: Arc<Message>,
        group: Arc<str>,
        attempt: u32,
        acker: Box<dyn Acknowledger>,
    ) -> Self {
        Self::of(message, group, attempt, Arc::from(acker))
    }

    /// As [`new`](Self::new), with the acknowledger by value: one allocation fewer per
    /// delivery than boxing it.
    pub fn with_acker(
        message: Arc<Message>,
        group: Arc<str>,
        attempt: u32,
        acker: impl Acknowledger + 'static,
    ) -> Self {
        Self::of(message, group, attempt, Arc::new(acker))
    }

    fn of(
        message: Arc<Message>,
        group: Arc<str>,
        attempt: u32,
        acker: Arc<dyn Acknowledger>,
    ) -> Self {
        Delivery {
            message,
            group,
            attempt,
            published: None,
            acker,
        }
    }

    pub(crate) fn into_parts(self) -> DeliveryParts {
        DeliveryParts {
            message: self.message,
            group: self.group,
            attempt: self.attempt,
            published: self.published,
            acker: self.acker,
        }
    }

    /// The same delivery, stamped with when the broker stored the message, on tokio's clock
    /// (a backend with wall-clock publish times converts: now minus the message's age). Every
    /// backend of this workspace sets it; the listener runtime measures how long a waiting
    /// event has waited from it.
    pub fn with_published(mut self, at: tokio::time::Instant) -> Self {
        self.published = Some(at);
        self
    }

    /// When the broker stored the message, on tokio's clock, if the backend says.
    pub fn published(&self) -> Option<tokio::time::Instant> {
        self.published
    }

    /// How long ago the broker stored the message, if the backend says.
    pub fn age(&self) -> Option<Duration> {
        self.published
            .map(|at| tokio::time::Instant::now().saturating_duration_since(at))
    }

    /// The message.
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// The subject.
    pub fn subject(&self) -> &str {
        &self.message.subject
    }

    /// The payload.
    pub fn payload(&self) -> &Bytes {
        &self.message.payload
    }

    /// The headers.
    pub fn headers(&self) -> &Headers {
        &self.message.headers
    }

    /// The sequence of the message in its subject's log.
    pub fn sequence(&self) -> u64 {
        self.message.sequence
    }

    /// The queue group this delivery belongs to.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// 1 for the first delivery, 2 for the first redelivery, and so on.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Done: never redeliver.
    pub async fn ack(self) -> Result<(), BusError> {
        self.acker.ack().await
    }

    /// Redeliver, no sooner than `delay` (at once for `None`).
    pub async fn nak(self, delay: Option<Duration>) -> Result<(), BusError> {
        self.acker.nak(delay).await
    }

    /// Never redeliver; dead-letter with `reason`.
    pub async fn term(self, reason: &str) -> Result<(), BusError> {
        self.acker.term(reason).await
    }

    /// Still working: restart the ack-wait clock.
    pub async fn progress(&self) -> Result<(), BusError> {
        self.acker.progress().await
    }
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("subject", &self.message.subject)
            .field("sequence", &self.message.sequence)
            .field("group", &self.group)
            .field("attempt", &self.attempt)
            .field("payload_len", &self.message.payload.len())
            .finish()
    }
}

/// One member of a queue group.
#[async_trait]
pub trait Subscription: Send {
    /// The next delivery for this member; waits until one is due. `None` once the bus is
    /// closed. Cancel-safe: dropping the future loses nothing.
    async fn next(&mut self) -> Option<Result<Delivery, BusError>>;

    /// A delivery that is ready now, without waiting (`None` when none is, or the backend
    /// cannot tell without waiting). The listener runtime asks this first and awaits
    /// [`next`](Self::next) only when it returns `None`; a backend that holds deliveries in
    /// memory (the in-memory bus, a prefetched batch) answers it without the cost of a future.
    fn try_next(&mut self) -> Option<Result<Delivery, BusError>> {
        None
    }

    /// Leaves the group. Deliveries already handed out stay valid and must still be settled;
    /// messages a pulling backend fetched ahead but never handed out go back to the group
    /// after their ack wait.
    async fn close(self: Box<Self>) -> Result<(), BusError>;
}

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

/// The group's consumer on each of `subjects`, as [`Bus::subscribe`] makes them, merged into
/// one member: [`Bus::subscribe_many`] where a backend has no consumer of several subjects (the
/// in-memory bus; the listener runtime on a nats-server older than 2.10).
pub async fn subscribe_each<B: Bus + ?Sized>(
    bus: &B,
    subjects: &[&str],
    group: &str,
    options: SubscribeOptions,
) -> Result<Box<dyn Subscription>, BusError> {
    let mut members: Vec<Box<dyn Subscription>> = Vec::with_capacity(subjects.len());
    for subject in subjects {
        match bus.subscribe(subject, group, options).await {
            Ok(member) => members.push(member),
            Err(error) => {
                for member in members {
                    let _ = member.close().await;
                }
                return Err(error);
            }
        }
    }
    Ok(merge(members))
}

/// What names an ordered group ([`Bus::subscribe_ordered`]) on the broker: `{group}--{subject}`
/// on one subject (`.` written `_`), as a plain group's consumer on it; the group alone on
/// several, as [`Bus::subscribe_many`]'s consumer.
pub fn ordered_group_name(group: &str, subjects: &[&str]) -> String {
    match subjects {
        [subject] => format!("{group}--{}", subject.replace('.', "_")),
        _ => group.to_owned(),
    }
}

/// Members of several consumers as one member: each `next` takes the first delivery any of
/// them has, starting with another one each time so that a busy consumer does not starve the
/// others; `close` closes them all. For backends that build a subscription out of several
/// consumers (one per subject, one per partition).
pub fn merge(members: Vec<Box<dyn Subscription>>) -> Box<dyn Subscription> {
    Box::new(Merged { members, first: 0 })
}

/// Members of several consumers as one: each `next` takes the first delivery any of them has,
/// starting the race with another member each time so that a busy subject does not starve
/// the others.
struct Merged {
    members: Vec<Box<dyn Subscription>>,
    first: usize,
}

#[async_trait]
impl Subscription for Merged {
    async fn next(&mut self) -> Option<Result<Delivery, BusError>> {
        if self.members.is_empty() {
            return None;
        }
        let first = self.first % self.members.len();
        self.first = first + 1;
        let (before, after) = self.members.split_at_mut(first);
        let racing = after.iter_mut().chain(before).map(|member| member.next());
        // Each member's `next` is cancel-safe: the losers lose nothing.
        let (delivery, _, _) = futures::future::select_all(racing).await;
        delivery
    }

    fn try_next(&mut self) -> Option<Result<Delivery, BusError>> {
        let count = self.members.len();
        (0..count).find_map(|k| {
            let i = (self.first + k) % count;
            let delivery = self.members[i].try_next()?;
            self.first = i + 1;
            Some(delivery)
        })
    }

    async fn close(self: Box<Self>) -> Result<(), BusError> {
        let mut outcome = Ok(());
        for member in self.members {
            if let Err(error) = member.close().await {
                outcome = Err(error);
            }
        }
        outcome
    }
}

/// A message the bus gave up on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Its id in the dead-letter store, for [`Bus::redrive`].
    pub id: u64,
    /// The message, as first published.
    pub message: Message,
    /// The queue group that gave up.
    pub group: String,
    /// How many times it was delivered.
    pub attempts: u32,
    /// Why: the handler's error, the decode error, or the redelivery limit.
    pub reason: String,
    /// When it was dead-lettered.
    pub at: SystemTime,
}

/// A transport backend.
///
/// Object-safe: services hold an `Arc<dyn Bus>` chosen from configuration at run time.
#[async_trait]
pub trait Bus: Send + Sync + 'static {
    /// Stores a message; returns once the broker confirmed it.
    async fn publish(&self, message: OutgoingMessage) -> Result<PublishAck, BusError>;

    /// Joins the durable queue group `group` on `subject` as a new member.
    async fn subscribe(
        &self,
        subject: &str,
        group: &str,
        options: SubscribeOptions,
    ) -> Result<Box<dyn Subscription>, BusError>;

    /// Joins the durable queue group `group` on all of `subjects` as one consumer (one member
    /// of it): each message of any of the subjects goes to one member of the group, under the
    /// same settlement rules as [`subscribe`](Self::subscribe). A backend with consumers of
    /// several subjects (NATS JetStream from nats-server 2.10) keeps one durable for the group,
    /// named after it alone, with one `max_ack_pending` for all the subjects; an older server is
    /// a clear [`BusError::Unsupported`]. Default (the in-memory bus): the group's consumer on
    /// each subject, as [`subscribe`](Self::subscribe) makes them, merged into one member, so a
    /// group that consumed the subjects one by one resumes where it was.
    async fn subscribe_many(
        &self,
        subjects: &[&str],
        group: &str,
        options: SubscribeOptions,
    ) -> Result<Box<dyn Subscription>, BusError> {
        subscribe_each(self, subjects, group, options).await
    }

    /// Joins the durable queue group `group` on all of `subjects` as a member of a consumer
    /// that keeps per-key order (see [`partition`](crate::partition)): the messages of one
    /// ordering key, across all the subjects, are delivered in publish order, each only once
    /// the one before it was acked or dead-lettered, so one member at a time handles a key,
    /// while keys in other partitions run in parallel on other members. A member that leaves
    /// (or dies) hands its partitions over: its unsettled delivery comes again to another
    /// member after the ack wait, then the partition flows on. A nak holds the partition (and
    /// every key that shares it) until the redelivery is settled. `max_ack_pending` is per
    /// partition and always 1; the other settlement rules are [`subscribe`](Self::subscribe)'s.
    /// The group is not the group of [`subscribe`](Self::subscribe) or
    /// [`subscribe_many`](Self::subscribe_many) of the same name: a new ordered group starts
    /// from the first retained message. As with those two, an ordered group on one subject is
    /// named by the group and the subject ([`ordered_group_name`]), on several subjects by the
    /// group alone (its subjects may change). Default: unsupported.
    async fn subscribe_ordered(
        &self,
        subjects: &[&str],
        group: &str,
        options: SubscribeOptions,
    ) -> Result<Box<dyn Subscription>, BusError> {
        let _ = (subjects, group, options);
        Err(BusError::Unsupported(
            "per-key ordered delivery on this bus".into(),
        ))
    }

    /// The dead letters currently held, oldest first.
    async fn dead_letters(&self) -> Result<Vec<DeadLetter>, BusError>;

    /// Delivers a dead letter again to its own queue group (attempts start over) and removes it
    /// from the dead letters.
    async fn redrive(&self, id: u64) -> Result<(), BusError>;

    /// Sends `request` on its subject to one member of each responder group of that subject and
    /// returns the first reply. Core messaging, not the stream: nothing is stored, a request is
    /// delivered at most once, and a responder that is not there when it is sent never sees it.
    /// [`BusError::NoResponders`] at once when no group answers the subject,
    /// [`BusError::Timeout`] when none replied within `timeout`. Default: unsupported.
    async fn request(
        &self,
        request: OutgoingMessage,
        timeout: Duration,
    ) -> Result<Reply, BusError> {
        let _ = (request, timeout);
        Err(BusError::Unsupported("request/reply on this bus".into()))
    }

    /// Joins the responder group `group` on `subject` as a new member: each request goes to
    /// one member of each group. Default: unsupported.
    async fn respond(&self, subject: &str, group: &str) -> Result<Box<dyn Responder>, BusError> {
        let _ = (subject, group);
        Err(BusError::Unsupported("request/reply on this bus".into()))
    }

    /// Sends `payload` to whoever listens to `subject` now ([`signals`](Self::signals)): a hint
    /// between processes — a wake-up, a cache to drop — never an event. Not stored, not
    /// acknowledged, lost when nobody listens; every listener gets it. On NATS a core publish
    /// (outside the streams). Default: unsupported.
    async fn signal(&self, subject: &str, payload: Bytes) -> Result<(), BusError> {
        let _ = (subject, payload);
        Err(BusError::Unsupported("signals on this bus".into()))
    }

    /// The signals sent to `subject` from now on, each to every listener; a listener that falls
    /// behind skips some (they are hints). The stream ends when the bus closes. Default:
    /// unsupported.
    async fn signals(&self, subject: &str) -> Result<Signals, BusError> {
        let _ = subject;
        Err(BusError::Unsupported("signals on this bus".into()))
    }

    /// Whether the broker can be used now, for readiness probes: `Ok` when it answers. Default:
    /// always (a bus in the process).
    async fn health(&self) -> Result<(), BusError> {
        Ok(())
    }

    /// Waits until everything this handle sent (publishes, acks) has reached the broker. Call
    /// it before a process exits after stopping its listeners. Default: nothing to flush.
    async fn flush(&self) -> Result<(), BusError> {
        Ok(())
    }
}

/// What a bus operation can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BusError {
    /// The subject is empty or has characters a subject cannot hold.
    #[error("invalid subject {subject:?}: {reason}")]
    InvalidSubject {
        /// The subject.
        subject: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The queue group name cannot name a durable consumer.
    #[error("invalid queue group {group:?}: {reason}")]
    InvalidGroup {
        /// The group.
        group: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// No dead letter has this id.
    #[error("dead letter {0} not found")]
    DeadLetterNotFound(u64),
    /// The broker did not confirm in time.
    #[error("timed out: {0}")]
    Timeout(String),
    /// The bus was closed.
    #[error("bus is closed")]
    Closed,
    /// A request found no responder for its subject.
    #[error("no responder for {0}")]
    NoResponders(String),
    /// The backend (or its server) does not offer this; the message says what and why.
    #[error("not supported: {0}")]
    Unsupported(String),
    /// A failure injected by a test harness.
    #[error("injected failure: {0}")]
    Injected(String),
    /// A backend-specific failure.
    #[error("{backend} error: {source}")]
    Backend {
        /// The backend (`"nats"`).
        backend: &'static str,
        /// The cause.
        source: BoxError,
    },
}

impl BusError {
    /// Wraps a backend's error.
    pub fn backend(backend: &'static str, source: impl Into<BoxError>) -> Self {
        BusError::Backend {
            backend,
            source: source.into(),
        }
    }
}

/// Checks a subject: not empty, no whitespace, no wildcard (`*`, `>`), no empty `.` token.
pub fn validate_subject(subject: &str) -> Result<(), BusError> {
    let invalid = |reason| BusError::InvalidSubject {
        subject: subject.to_owned(),
        reason,
    };
    if subject.is_empty() {
        return Err(invalid("empty"));
    }
    if subject.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid("contains whitespace"));
    }
    if subject.contains(['*', '>']) {
        return Err(invalid("contains a wildcard"));
    }
    if subject.split('.').any(str::is_empty) {
        return Err(invalid("has an empty token"));
    }
    Ok(())
}

/// Checks a queue group name: 1 to 200 characters, no whitespace, `.`, `*`, `>`, `/` or `\`
/// (it names a durable consumer).
pub fn validate_group(group: &str) -> Result<(), BusError> {
    let invalid = |reason| BusError::InvalidGroup {
        group: group.to_owned(),
        reason,
    };
    if group.is_empty() {
        return Err(invalid("empty"));
    }
    if group.len() > 200 {
        return Err(invalid("longer than 200 bytes"));
    }
    if group
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '.' | '*' | '>' | '/' | '\\'))
    {
        return Err(invalid("contains whitespace, '.', '*', '>', '/' or '\\'"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_of_the_original_system_are_valid() {
        for s in ["ticket:created", "order:cancelled", "a.b.c"] {
            validate_subject(s).unwrap();
        }
        for s in ["", "a b", "a.*", "a.>", "a..b", ".a"] {
            assert!(validate_subject(s).is_err(), "{s:?}");
        }
    }

    #[test]
    fn group_names_must_name_a_durable_consumer() {
        validate_group("orders-service").unwrap();
        for g in ["", "a.b", "a b", "a*", "a/b"] {
            assert!(validate_group(g).is_err(), "{g:?}");
        }
    }
}
