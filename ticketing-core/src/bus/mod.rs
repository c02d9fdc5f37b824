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
//!   time, while other keys run in parallel.
//! - **Dead letters** keep the message with its reason, subject, group and attempts;
//!   [`Bus::redrive`] delivers one again to its group alone.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;

mod delivery;
mod merge;
mod reply;

pub use delivery::{Acknowledger, Delivery, Subscription};
pub use merge::{ordered_group_name, subscribe_each};
pub use reply::{IncomingRequest, Replier, Reply, Responder, Signals};

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
    /// while other keys run in parallel, in this member and in others. A nak holds its key
    /// (not the other keys of its partition) until the redelivery is settled. A member that
    /// leaves (or dies) hands its partitions over: what it had out comes again to another
    /// member, after the ack wait where it died, then the key flows on; a member that fetched
    /// ahead may have been delivered a key's later events too, which then come again as
    /// redeliveries, in order. `max_ack_pending` is shared among the partitions; the other
    /// settlement rules are [`subscribe`](Self::subscribe)'s.
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

/// Checks what a member joins: each of `subjects` ([`validate_subject`]) and the queue group
/// `group` ([`validate_group`]).
pub fn validate_member(subjects: &[&str], group: &str) -> Result<(), BusError> {
    for subject in subjects {
        validate_subject(subject)?;
    }
    validate_group(group)
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
