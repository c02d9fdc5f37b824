//! NATS JetStream backend, on async-nats.
//!
//! # Layout
//!
//! | what | name (defaults) |
//! |---|---|
//! | events stream | [`NatsBusConfig::stream`] (`TICKETING`), subjects `{prefix}.>` |
//! | a bus subject such as `ticket:created` | NATS subject `{prefix}.ticket:created` (prefix `ticketing`) |
//! | a queue group `g` on subject `s` | durable pull consumer `g--s` (`.` in `s` written `_`), shared by every member |
//! | dead letters | stream [`NatsBusConfig::dead_letter_stream`] (`TICKETING_DLQ`), subjects `{prefix}-dlq.>`; one message per dead letter on `{prefix}-dlq.{group}.{subject}` |
//!
//! A deployment picks its prefix and stream names, so several systems (or tests) share one
//! server without seeing each other.
//!
//! # Semantics
//!
//! - `publish` returns after the PubAck. The message id goes out as `Nats-Msg-Id`; a duplicate
//!   inside the stream's duplicate window comes back as [`PublishAck::duplicate`]. Concurrent
//!   publishes are pipelined on one connection.
//! - Each member pulls from the group's consumer in batches of
//!   [`SubscribeOptions::prefetch`], with pull requests that expire after 2 s. What a closed
//!   member fetched but never handed out is redelivered to the group after its ack wait.
//! - `nak(delay)` is `-NAK {"delay":…}`, `progress` is `+WPI`, `term` stores the dead letter,
//!   then `+TERM`s the message. The consumer is created with `max_deliver + 1`: a delivery past
//!   the limit (its last ack wait ran out) is dead-lettered by the member that receives it, with
//!   the reason, instead of being handed out.
//! - `redrive` republishes a dead letter on its subject with a `Ticketing-Redrive-Group` header;
//!   members of other groups ack it unseen, so only its own group handles it again.
//! - Connection loss: async-nats reconnects; publishes fail (the caller retries, the message id
//!   makes the retry safe) until the server is back; pull streams resume on reconnect.
//!
#![doc = include_str!("../../docs/nats.md")]

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull};
use async_nats::jetstream::message::AckKind;
use async_nats::jetstream::message::PublishMessage as Publish;
use async_nats::jetstream::stream::{self, DiscardPolicy, RetentionPolicy, StorageType};
use async_nats::{HeaderMap, HeaderName, HeaderValue};
use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;

use ticketing_core::bus::{validate_member, validate_subject};
use ticketing_core::{
    Acknowledger, Bus, BusError, DeadLetter, Delivery, Headers, Message, OutgoingMessage,
    PublishAck, SubscribeOptions, Subscription,
};

mod config;
mod headers;
mod leases;
mod many;
mod partitions;
mod rpc;
mod streams;
mod subscription;
use config::*;
pub use config::{NatsBusConfig, NatsStorage};
use headers::*;
pub use many::SEVERAL_SUBJECTS_SINCE;
use streams::*;
use subscription::*;

const BACKEND: &str = "nats";
const REDRIVE_GROUP: &str = "Ticketing-Redrive-Group";
const DEAD_REASON: &str = "Ticketing-Dead-Reason";
const DEAD_SUBJECT: &str = "Ticketing-Dead-Subject";
const DEAD_GROUP: &str = "Ticketing-Dead-Group";
const DEAD_ATTEMPTS: &str = "Ticketing-Dead-Attempts";
const DEAD_SEQUENCE: &str = "Ticketing-Dead-Sequence";
const DEAD_AT: &str = "Ticketing-Dead-At";

/// A stream's limits: messages, bytes, age (none: unlimited).
type StreamLimits = (Option<i64>, Option<i64>, Option<Duration>);

/// A bus on NATS JetStream. Cloning shares the connection.
#[derive(Clone)]
pub struct NatsBus {
    inner: Arc<Inner>,
}

struct Inner {
    client: async_nats::Client,
    js: async_nats::jetstream::Context,
    config: NatsBusConfig,
    events: stream::Stream,
    dead: stream::Stream,
    events_max_age: Option<Duration>,
    /// The events stream's partitions, read from its transform.
    partitions: Option<u32>,
}

fn backend(error: impl Into<ticketing_core::bus::BoxError>) -> BusError {
    BusError::backend(BACKEND, error)
}

impl NatsBus {
    /// Connects and creates (or updates) the two streams.
    pub async fn connect(config: NatsBusConfig) -> Result<Self, BusError> {
        validate_subject(&config.subject_prefix)?;
        // Credentials go to the client as options, never inside the URL it logs.
        let (url, credentials) = split_credentials(&config.url);
        let mut options = async_nats::ConnectOptions::new()
            .name("ticketing")
            .connection_timeout(config.request_timeout)
            .request_timeout(Some(config.request_timeout));
        match credentials {
            Some(Credentials::UserPassword(user, password)) => {
                options = options.user_and_password(user, password);
            }
            Some(Credentials::Token(token)) => options = options.token(token),
            None => {}
        }
        // A cluster's servers, comma-separated: each its own address (a client fails over).
        let servers: Vec<&str> = url
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        let client = options.connect(servers).await.map_err(|e| {
            backend(format!(
                "cannot connect to {}: {e}",
                ticketing_core::config::redact_url(&config.url)
            ))
        })?;
        Self::with_client(client, config).await
    }

    /// Uses an existing connection and creates the two streams when missing. An existing stream
    /// is used as the operator left it (its limits are never overwritten); one whose subjects
    /// do not cover this bus's is an error.
    pub async fn with_client(
        client: async_nats::Client,
        config: NatsBusConfig,
    ) -> Result<Self, BusError> {
        let js = async_nats::jetstream::context::ContextBuilder::new()
            .timeout(config.request_timeout)
            .max_ack_inflight(config.max_publishes_in_flight.max(1))
            .backpressure_on_inflight(true)
            .build(client.clone());
        let storage = match config.storage {
            NatsStorage::File => StorageType::File,
            NatsStorage::Memory => StorageType::Memory,
        };
        let stream = |name: &str, subjects: String, limits: StreamLimits, description: &str| {
            stream::Config {
                name: name.to_owned(),
                subjects: vec![subjects],
                retention: RetentionPolicy::Limits,
                discard: DiscardPolicy::Old,
                storage,
                num_replicas: config.replicas.max(1),
                duplicate_window: config.duplicate_window,
                max_messages: limits.0.unwrap_or(-1),
                max_bytes: limits.1.unwrap_or(-1),
                max_age: limits.2.unwrap_or_default(),
                description: Some(description.into()),
                ..Default::default()
            }
        };
        let events = stream(
            &config.stream,
            format!("{}.>", config.subject_prefix),
            (config.max_messages, config.max_bytes, config.max_age),
            "ticketing events",
        );
        let events = match config.partitions {
            Some(count) => {
                let version = client.server_info().version;
                if !many::at_least(&version, many::SEVERAL_SUBJECTS_SINCE) {
                    return Err(BusError::Unsupported(format!(
                        "partitions need nats-server 2.10 or later; the server is {version:?}"
                    )));
                }
                let transform = partitions::transform(&config.subject_prefix, count.max(1));
                let events = stream::Config {
                    subject_transform: Some(transform.clone()),
                    ..events
                };
                ensure_transform(&js, ensure_stream(&js, events).await?, transform).await?
            }
            None => ensure_stream(&js, events).await?,
        };
        let dead = stream(
            &config.dead_letter_stream,
            format!("{}-dlq.>", config.subject_prefix),
            (
                config.dead_letter_max_messages,
                config.dead_letter_max_bytes,
                config.dead_letter_max_age,
            ),
            "ticketing dead letters",
        );
        let dead = ensure_stream(&js, dead).await?;
        let mut events = events;
        let info = events.info().await.map_err(backend)?.config.clone();
        let events_max_age = info.max_age;
        let partitions = partitions::partitions_of(&info, &config.subject_prefix);
        Ok(NatsBus {
            inner: Arc::new(Inner {
                client,
                js,
                config,
                events,
                dead,
                events_max_age: (!events_max_age.is_zero()).then_some(events_max_age),
                partitions,
            }),
        })
    }

    /// How long the events stream keeps a message (as configured here or found on the
    /// server); `None` when age does not limit it.
    pub fn events_max_age(&self) -> Option<Duration> {
        self.inner.events_max_age
    }

    /// The configuration in use.
    pub fn config(&self) -> &NatsBusConfig {
        &self.inner.config
    }

    /// The underlying connection.
    pub fn client(&self) -> &async_nats::Client {
        &self.inner.client
    }

    /// This bus as the `Arc<dyn Bus>` services take.
    pub fn as_dyn(&self) -> Arc<dyn Bus> {
        Arc::new(self.clone())
    }

    /// Deletes both streams and their consumers, and the ordered groups' partition leases:
    /// everything this bus stored.
    pub async fn delete_streams(&self) -> Result<(), BusError> {
        for name in [
            &self.inner.config.stream,
            &self.inner.config.dead_letter_stream,
        ] {
            self.inner.js.delete_stream(name).await.map_err(backend)?;
        }
        // The ordered groups' partition leases, if any group made them.
        let leases = leases::bucket_of(&self.inner.config.stream);
        if self.inner.js.get_key_value(&leases).await.is_ok() {
            self.inner
                .js
                .delete_key_value(&leases)
                .await
                .map_err(backend)?;
        }
        Ok(())
    }

    /// The events stream's partitions (for ordered groups), if it has them.
    pub fn partitions(&self) -> Option<u32> {
        self.inner.partitions
    }
}

impl Inner {
    /// The bus subject of a stored NATS subject: the prefix taken off, and of the keyed form
    /// (`_k.{subject}.{partition}.{key}`) the subject alone.
    fn user_subject<'a>(&self, nats_subject: &'a str) -> &'a str {
        let rest = nats_subject
            .strip_prefix(self.config.subject_prefix.as_str())
            .and_then(|s| s.strip_prefix('.'))
            .unwrap_or(nats_subject);
        match rest
            .strip_prefix(partitions::KEYED)
            .and_then(|r| r.strip_prefix('.'))
        {
            Some(keyed) => keyed.split('.').next().unwrap_or(keyed),
            None => rest,
        }
    }

    /// Stores a dead letter; its message id makes a retried store a no-op.
    async fn dead_letter(
        &self,
        message: &Message,
        group: &str,
        attempts: u32,
        reason: &str,
    ) -> Result<(), BusError> {
        let mut headers = to_nats_headers(&message.headers)?;
        let at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        headers.insert(DEAD_REASON, header_value(reason));
        headers.insert(DEAD_SUBJECT, header_value(&message.subject));
        headers.insert(DEAD_GROUP, header_value(group));
        headers.insert(DEAD_ATTEMPTS, attempts.to_string().as_str());
        headers.insert(DEAD_SEQUENCE, message.sequence.to_string().as_str());
        headers.insert(DEAD_AT, at.to_string().as_str());
        let subject = format!(
            "{}-dlq.{group}.{}",
            self.config.subject_prefix, message.subject
        );
        let publish = Publish::build()
            .payload(message.payload.clone())
            .headers(headers)
            .message_id(format!("dead:{group}:{}", message.sequence));
        self.js
            .send_publish(subject, publish)
            .await
            .map_err(backend)?
            .await
            .map_err(backend)?;
        tracing::warn!(
            subject = %message.subject,
            group,
            sequence = message.sequence,
            attempts,
            reason,
            "message dead-lettered"
        );
        Ok(())
    }
}

#[async_trait]
impl Bus for NatsBus {
    async fn request(
        &self,
        request: OutgoingMessage,
        timeout: Duration,
    ) -> Result<ticketing_core::Reply, BusError> {
        self.send_request(request, timeout).await
    }

    async fn respond(
        &self,
        subject: &str,
        group: &str,
    ) -> Result<Box<dyn ticketing_core::Responder>, BusError> {
        self.join_responders(subject, group).await
    }

    async fn signal(&self, subject: &str, payload: Bytes) -> Result<(), BusError> {
        self.send_signal(subject, payload).await
    }

    async fn signals(&self, subject: &str) -> Result<ticketing_core::bus::Signals, BusError> {
        self.listen_signals(subject).await
    }

    async fn publish(&self, message: OutgoingMessage) -> Result<PublishAck, BusError> {
        validate_subject(&message.subject)?;
        let mut publish = Publish::build().payload(message.payload);
        if !message.headers.is_empty() {
            publish = publish.headers(to_nats_headers(&message.headers)?);
        }
        if let Some(id) = &message.message_id {
            publish = publish.message_id(id);
        }
        let subject = self.inner.publish_subject(
            &message.subject,
            &message.headers,
            message.message_id.as_deref(),
        );
        let ack = self
            .inner
            .js
            .send_publish(subject, publish)
            .await
            .map_err(backend)?
            .await
            .map_err(backend)?;
        Ok(PublishAck {
            sequence: ack.sequence,
            duplicate: ack.duplicate,
        })
    }

    async fn subscribe(
        &self,
        subject: &str,
        group: &str,
        options: SubscribeOptions,
    ) -> Result<Box<dyn Subscription>, BusError> {
        validate_member(&[subject], group)?;
        let mut filters = self.inner.plain_filters(subject);
        let (filter_subject, filter_subjects) = match filters.len() {
            1 => (filters.remove(0), Vec::new()),
            _ => (String::new(), filters),
        };
        let config = pull::Config {
            durable_name: Some(consumer_name(group, subject)),
            description: Some(format!("queue group {group} on {subject}")),
            filter_subject,
            filter_subjects,
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::Explicit,
            ack_wait: options.ack_wait,
            // One delivery past the limit reaches a member, which dead-letters it.
            max_deliver: i64::from(options.max_deliver.max(1)) + 1,
            max_ack_pending: i64::try_from(options.max_ack_pending.max(1)).unwrap_or(i64::MAX),
            ..Default::default()
        };
        let consumer: PullConsumer =
            self.inner
                .events
                .create_consumer(config)
                .await
                .map_err(|e| {
                    backend(format!(
                        "cannot create consumer for {group} on {subject}: {e}"
                    ))
                })?;
        Ok(Box::new(NatsSubscription::new(
            self.inner.clone(),
            consumer,
            group,
            options,
            Vec::new(),
        )))
    }

    async fn subscribe_many(
        &self,
        subjects: &[&str],
        group: &str,
        options: SubscribeOptions,
    ) -> Result<Box<dyn Subscription>, BusError> {
        self.subscribe_several(subjects, group, options).await
    }

    async fn subscribe_ordered(
        &self,
        subjects: &[&str],
        group: &str,
        options: SubscribeOptions,
    ) -> Result<Box<dyn Subscription>, BusError> {
        self.subscribe_partitioned(subjects, group, options).await
    }

    async fn dead_letters(&self) -> Result<Vec<DeadLetter>, BusError> {
        let info = self.inner.dead.get_info().await.map_err(backend)?;
        let mut letters = Vec::new();
        if info.state.messages == 0 {
            return Ok(letters);
        }
        for sequence in info.state.first_sequence..=info.state.last_sequence {
            let raw = match self.inner.dead.get_raw_message(sequence).await {
                Ok(raw) => raw,
                Err(e) if matches!(e.kind(), stream::RawMessageErrorKind::NoMessageFound) => {
                    continue;
                }
                Err(e) => return Err(backend(e)),
            };
            letters.push(parse_dead_letter(sequence, raw.headers, raw.payload));
        }
        Ok(letters)
    }

    async fn redrive(&self, id: u64) -> Result<(), BusError> {
        let raw = match self.inner.dead.get_raw_message(id).await {
            Ok(raw) => raw,
            Err(e) if matches!(e.kind(), stream::RawMessageErrorKind::NoMessageFound) => {
                return Err(BusError::DeadLetterNotFound(id));
            }
            Err(e) => return Err(backend(e)),
        };
        let letter = parse_dead_letter(id, raw.headers, raw.payload);
        let mut headers = to_nats_headers(&letter.message.headers)?;
        headers.insert(REDRIVE_GROUP, header_value(&letter.group));
        let publish = Publish::build()
            .payload(letter.message.payload.clone())
            .headers(headers)
            .message_id(format!(
                "redrive:{}:{id}",
                self.inner.config.dead_letter_stream
            ));
        let subject =
            self.inner
                .publish_subject(&letter.message.subject, &letter.message.headers, None);
        self.inner
            .js
            .send_publish(subject, publish)
            .await
            .map_err(backend)?
            .await
            .map_err(backend)?;
        self.inner.dead.delete_message(id).await.map_err(backend)?;
        Ok(())
    }

    /// Flushes the connection: acks are sent without confirmation, so a process that exits
    /// right after its last ack flushes first.
    async fn flush(&self) -> Result<(), BusError> {
        self.inner.client.flush().await.map_err(backend)
    }

    /// Connected, and JetStream answers for the events stream (a cluster that lost the
    /// stream's quorum does not).
    async fn health(&self) -> Result<(), BusError> {
        use async_nats::connection::State;
        match self.inner.client.connection_state() {
            State::Connected => {}
            state => return Err(backend(format!("the connection is {state}"))),
        }
        let stream = self.inner.js.get_stream(&self.inner.config.stream);
        match tokio::time::timeout(Duration::from_secs(2), stream).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(backend(format!("JetStream does not answer: {error}"))),
            Err(_) => Err(backend("JetStream did not answer within 2 s")),
        }
    }
}

impl std::fmt::Debug for NatsBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsBus")
            .field("url", &self.inner.config.url)
            .field("stream", &self.inner.config.stream)
            .field("subject_prefix", &self.inner.config.subject_prefix)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::{Credentials, split_credentials};

    #[test]
    fn subject_patterns_cover_what_they_match() {
        use super::covers;
        assert!(covers("ticketing.>", "ticketing.>"));
        assert!(covers(">", "ticketing.>"));
        assert!(covers("*.>", "ticketing.>"));
        assert!(!covers("ticketing.*", "ticketing.>"));
        assert!(!covers("other.>", "ticketing.>"));
        assert!(!covers("ticketing.ticket:created", "ticketing.>"));
        assert!(covers("a.*.c", "a.b.c"));
        assert!(!covers("a.b", "a.b.c"));
    }

    #[test]
    fn credentials_leave_the_url() {
        assert_eq!(
            split_credentials("nats://u:pw@h:4222"),
            (
                "nats://h:4222".to_owned(),
                Some(Credentials::UserPassword("u".into(), "pw".into()))
            )
        );
        assert_eq!(
            split_credentials("nats://tok@h:4222,nats://g:4222"),
            (
                "nats://h:4222,nats://g:4222".to_owned(),
                Some(Credentials::Token("tok".into()))
            )
        );
        assert_eq!(
            split_credentials("nats://h:4222"),
            ("nats://h:4222".to_owned(), None)
        );
    }
}
