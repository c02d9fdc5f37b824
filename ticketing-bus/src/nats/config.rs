//! How a NATS bus connects and lays out its streams, and the credentials taken out of its URLs.

#[allow(clippy::wildcard_imports)]
use super::*;

/// Where a stream keeps its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatsStorage {
    /// On disk: survives a server restart.
    File,
    /// In memory: fast, lost with the server.
    Memory,
}

/// How a [`NatsBus`] connects and lays out its streams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsBusConfig {
    /// Server URL(s), comma-separated. Default `nats://127.0.0.1:4222`.
    pub url: String,
    /// The events stream. Default `TICKETING`.
    pub stream: String,
    /// The first subject token of every event subject. Default `ticketing`.
    pub subject_prefix: String,
    /// The dead-letter stream. Default `TICKETING_DLQ`.
    pub dead_letter_stream: String,
    /// Storage of both streams. Default file.
    pub storage: NatsStorage,
    /// Replicas of both streams (a clustered deployment sets 3). Default 1.
    pub replicas: usize,
    /// How long message ids are remembered. Default 2 minutes.
    pub duplicate_window: Duration,
    /// Messages the events stream keeps; the oldest go first. `None`: unlimited.
    pub max_messages: Option<i64>,
    /// Bytes the events stream keeps. `None`: unlimited.
    pub max_bytes: Option<i64>,
    /// Age after which events are dropped. `None`: kept until a size limit is hit.
    pub max_age: Option<Duration>,
    /// Messages the dead-letter stream keeps. `None`: unlimited.
    pub dead_letter_max_messages: Option<i64>,
    /// Bytes the dead-letter stream keeps. `None`: unlimited.
    pub dead_letter_max_bytes: Option<i64>,
    /// Age after which dead letters are dropped. `None`: kept.
    pub dead_letter_max_age: Option<Duration>,
    /// Ack with confirmation (`double_ack`): an `ack` returns once the server recorded it.
    /// Costs a round trip per message. Default off: acks are sent, not confirmed.
    pub confirm_acks: bool,
    /// Publishes awaiting their PubAck at once on this connection, across all callers.
    /// Default 4096.
    pub max_publishes_in_flight: usize,
    /// Timeout of JetStream API calls and PubAcks. Default 5 s.
    pub request_timeout: Duration,
    /// Partitions of the events stream, for per-key ordered groups
    /// ([`Bus::subscribe_ordered`](ticketing_core::Bus::subscribe_ordered); nats-server 2.10 or
    /// later): the stream gets a subject transform that puts each event's key in one of this
    /// many partitions, and is updated when it exists without it. `None` (default): the stream
    /// is left as it is, and its partitions, if it has some, are used.
    pub partitions: Option<u32>,
}

impl Default for NatsBusConfig {
    fn default() -> Self {
        NatsBusConfig {
            url: "nats://127.0.0.1:4222".into(),
            stream: "TICKETING".into(),
            subject_prefix: "ticketing".into(),
            dead_letter_stream: "TICKETING_DLQ".into(),
            storage: NatsStorage::File,
            replicas: 1,
            duplicate_window: Duration::from_secs(120),
            max_messages: None,
            max_bytes: None,
            max_age: None,
            dead_letter_max_messages: None,
            dead_letter_max_bytes: None,
            dead_letter_max_age: None,
            confirm_acks: false,
            max_publishes_in_flight: 4096,
            request_timeout: Duration::from_secs(5),
            partitions: None,
        }
    }
}

impl NatsBusConfig {
    /// The default layout on the server at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        NatsBusConfig {
            url: url.into(),
            ..Default::default()
        }
    }

    /// A layout of its own: stream `{name}`, dead letters `{name}_DLQ`, subjects prefixed with
    /// `name` in lowercase. Tests give each case its own name.
    pub fn isolated(url: impl Into<String>, name: &str) -> Self {
        NatsBusConfig {
            url: url.into(),
            stream: name.to_owned(),
            dead_letter_stream: format!("{name}_DLQ"),
            subject_prefix: name.to_lowercase(),
            ..Default::default()
        }
    }
}

/// Credentials taken out of a NATS URL.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Credentials {
    UserPassword(String, String),
    Token(String),
}

/// The URL(s) without their user info, and the first credentials found (the servers of one
/// cluster share them).
pub(super) fn split_credentials(urls: &str) -> (String, Option<Credentials>) {
    let mut found = None;
    let stripped = urls
        .split(',')
        .map(|url| {
            let Some((scheme, userinfo, rest)) = ticketing_core::config::split_userinfo(url) else {
                return url.to_owned();
            };
            if found.is_none() {
                found = Some(match userinfo.split_once(':') {
                    Some((user, password)) => {
                        Credentials::UserPassword(user.to_owned(), password.to_owned())
                    }
                    None => Credentials::Token(userinfo.to_owned()),
                });
            }
            format!("{scheme}://{rest}")
        })
        .collect::<Vec<_>>()
        .join(",");
    (stripped, found)
}
