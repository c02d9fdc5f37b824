//! Choosing a bus backend at run time: [`BusSettings`] (plain, serde-deserializable) connects an
//! [`AnyBus`], which services use as an `Arc<dyn Bus>` whatever the backend.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), ticketing_core::BusError> {
//! use ticketing_bus::{BusBackend, BusSettings};
//!
//! // From configuration: `{"backend": "memory"}` or
//! // `{"backend": "nats", "url": "nats://127.0.0.1:4222", "stream": "TICKETING"}` …
//! let settings: BusSettings = serde_json::from_str(r#"{"backend": "memory"}"#).unwrap();
//! // … or from environment-style values: NATS when a URL is given, else memory.
//! assert_eq!(BusSettings::choose(None, None).unwrap(), settings);
//!
//! let bus = settings.connect().await?;
//! assert_eq!(bus.backend(), BusBackend::Memory);
//! let dyn_bus = bus.as_dyn();             // what services take
//! let harness = bus.memory().unwrap();    // what tests of the in-memory bus look at
//! # let _ = (dyn_bus, harness);
//! # Ok(()) }
//! ```

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use ticketing_core::config::redact_url;
use ticketing_core::{Bus, BusError};

use crate::memory::InMemoryBus;

/// A bus backend, by name: `memory`, `nats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BusBackend {
    /// The in-memory bus: one process only.
    Memory,
    /// NATS JetStream (feature `nats`).
    Nats,
}

impl BusBackend {
    /// Every backend.
    pub const ALL: [BusBackend; 2] = [BusBackend::Memory, BusBackend::Nats];

    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            BusBackend::Memory => "memory",
            BusBackend::Nats => "nats",
        }
    }
}

impl fmt::Display for BusBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for BusBackend {
    type Err = SettingsError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        BusBackend::ALL
            .into_iter()
            .find(|b| b.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| SettingsError(format!("unknown bus backend {s:?}: memory or nats")))
    }
}

/// Settings that do not say which bus to connect, or how.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SettingsError(String);

/// Where and how to reach NATS JetStream. The rest of the layout (dead-letter stream
/// `{stream}_DLQ`, file storage, one replica, a 2-minute de-duplication window) is
/// `NatsBusConfig`'s default.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsSettings {
    /// Server URL(s), comma-separated.
    pub url: String,
    /// The events stream; default `TICKETING`.
    #[serde(default = "default_stream")]
    pub stream: String,
    /// The first subject token of every event subject; default `ticketing`.
    #[serde(default = "default_prefix")]
    pub subject_prefix: String,
    /// Limits of the events stream when this bus creates it; default none.
    #[serde(default)]
    pub limits: StreamLimits,
    /// Limits of the dead-letter stream when this bus creates it; default none.
    #[serde(default)]
    pub dead_letter_limits: StreamLimits,
    /// Replicas of both streams when this bus creates them: 3 on a three-server cluster;
    /// default 1.
    #[serde(default = "default_replicas")]
    pub replicas: usize,
    /// Partitions of the events stream, for per-key ordered listeners (see
    /// [`NatsBusConfig::partitions`](crate::nats::NatsBusConfig::partitions)); default none.
    #[serde(default)]
    pub partitions: Option<u32>,
}

fn default_replicas() -> usize {
    1
}

/// What a stream keeps, set when the bus creates it (an existing stream keeps the limits its
/// operator gave it). `None`: no limit of that kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamLimits {
    /// Age after which messages are dropped, in seconds.
    #[serde(default)]
    pub max_age_seconds: Option<u64>,
    /// Bytes kept; the oldest messages go first.
    #[serde(default)]
    pub max_bytes: Option<i64>,
    /// Messages kept; the oldest go first.
    #[serde(default)]
    pub max_messages: Option<i64>,
}

impl StreamLimits {
    /// The age limit as a duration.
    pub fn max_age(&self) -> Option<Duration> {
        self.max_age_seconds.map(Duration::from_secs)
    }
}

fn default_stream() -> String {
    "TICKETING".into()
}

fn default_prefix() -> String {
    "ticketing".into()
}

impl NatsSettings {
    /// The default layout on the server at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        NatsSettings {
            url: url.into(),
            stream: default_stream(),
            subject_prefix: default_prefix(),
            limits: StreamLimits::default(),
            dead_letter_limits: StreamLimits::default(),
            replicas: default_replicas(),
            partitions: None,
        }
    }
}

impl fmt::Debug for NatsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsSettings")
            .field("url", &redact_url(&self.url))
            .field("stream", &self.stream)
            .field("subject_prefix", &self.subject_prefix)
            .field("limits", &self.limits)
            .field("dead_letter_limits", &self.dead_letter_limits)
            .field("replicas", &self.replicas)
            .field("partitions", &self.partitions)
            .finish()
    }
}

/// Which bus to connect. `Debug` and `Display` never show a password.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "backend", rename_all = "lowercase")]
pub enum BusSettings {
    /// A new in-memory bus.
    #[default]
    Memory,
    /// NATS JetStream.
    Nats(NatsSettings),
}

impl BusSettings {
    /// The settings environment-style configuration means: `backend` if given, else NATS when
    /// `nats` (its URL and layout) is given, else memory. NATS without settings is an error.
    pub fn choose(
        backend: Option<BusBackend>,
        nats: Option<NatsSettings>,
    ) -> Result<Self, SettingsError> {
        match (backend, nats) {
            (Some(BusBackend::Memory), _) | (None, None) => Ok(BusSettings::Memory),
            (Some(BusBackend::Nats) | None, Some(nats)) => Ok(BusSettings::Nats(nats)),
            (Some(BusBackend::Nats), None) => {
                Err(SettingsError("--bus nats needs NATS_URL".into()))
            }
        }
    }

    /// The backend these settings connect.
    pub fn backend(&self) -> BusBackend {
        match self {
            BusSettings::Memory => BusBackend::Memory,
            BusSettings::Nats(_) => BusBackend::Nats,
        }
    }

    /// Creates the in-memory bus, or connects to NATS and creates (or updates) its streams.
    /// A backend this build lacks is an error naming the feature.
    pub async fn connect(&self) -> Result<AnyBus, BusError> {
        match self {
            BusSettings::Memory => Ok(AnyBus::Memory(InMemoryBus::new())),
            #[cfg(feature = "nats")]
            BusSettings::Nats(nats) => {
                let config = crate::nats::NatsBusConfig {
                    url: nats.url.clone(),
                    stream: nats.stream.clone(),
                    dead_letter_stream: format!("{}_DLQ", nats.stream),
                    subject_prefix: nats.subject_prefix.clone(),
                    max_age: nats.limits.max_age(),
                    max_bytes: nats.limits.max_bytes,
                    max_messages: nats.limits.max_messages,
                    dead_letter_max_age: nats.dead_letter_limits.max_age(),
                    dead_letter_max_bytes: nats.dead_letter_limits.max_bytes,
                    dead_letter_max_messages: nats.dead_letter_limits.max_messages,
                    replicas: nats.replicas.max(1),
                    partitions: nats.partitions,
                    ..crate::nats::NatsBusConfig::default()
                };
                crate::nats::NatsBus::connect(config)
                    .await
                    .map(AnyBus::Nats)
            }
            #[cfg(not(feature = "nats"))]
            BusSettings::Nats(_) => Err(BusError::backend(
                "nats",
                "this build has no nats backend: enable the `nats` feature of ticketing-bus",
            )),
        }
    }
}

impl fmt::Display for BusSettings {
    /// A description for start-up logs, without passwords.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BusSettings::Memory => f.write_str("in-memory bus"),
            BusSettings::Nats(nats) => write!(
                f,
                "NATS JetStream at {} (stream {})",
                redact_url(&nats.url),
                nats.stream
            ),
        }
    }
}

/// A connected bus of any backend. Cloning shares it.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum AnyBus {
    /// The in-memory bus.
    Memory(InMemoryBus),
    /// NATS JetStream.
    #[cfg(feature = "nats")]
    #[cfg_attr(docsrs, doc(cfg(feature = "nats")))]
    Nats(crate::nats::NatsBus),
}

impl AnyBus {
    /// The bus, as services take it.
    pub fn as_dyn(&self) -> Arc<dyn Bus> {
        match self {
            AnyBus::Memory(bus) => bus.as_dyn(),
            #[cfg(feature = "nats")]
            AnyBus::Nats(bus) => bus.as_dyn(),
        }
    }

    /// The in-memory bus and its harness, when that is the backend.
    pub fn memory(&self) -> Option<&InMemoryBus> {
        match self {
            AnyBus::Memory(bus) => Some(bus),
            #[cfg(feature = "nats")]
            AnyBus::Nats(_) => None,
        }
    }

    /// How long the bus keeps an event when age limits it (a NATS stream's `max_age`, as
    /// configured or as found on the server); `None` when it does not.
    pub fn max_age(&self) -> Option<Duration> {
        match self {
            AnyBus::Memory(_) => None,
            #[cfg(feature = "nats")]
            AnyBus::Nats(bus) => bus.events_max_age(),
        }
    }

    /// Refuses a bus that drops events younger than `needed`: `what` still needs them (pending
    /// expiration timers, events waiting out a version gap).
    pub fn require_retention(&self, needed: Duration, what: &str) -> Result<(), BusError> {
        match self.max_age() {
            Some(age) if age < needed => Err(BusError::backend(
                "bus",
                format!(
                    "the event stream keeps messages for {}s, less than the {}s {what} needs: \
                     raise the stream's max age (NATS_MAX_AGE_SECONDS when the service creates \
                     it)",
                    age.as_secs(),
                    needed.as_secs()
                ),
            )),
            _ => Ok(()),
        }
    }

    /// The backend.
    pub fn backend(&self) -> BusBackend {
        match self {
            AnyBus::Memory(_) => BusBackend::Memory,
            #[cfg(feature = "nats")]
            AnyBus::Nats(_) => BusBackend::Nats,
        }
    }
}

impl From<InMemoryBus> for AnyBus {
    fn from(bus: InMemoryBus) -> Self {
        AnyBus::Memory(bus)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_is_the_default_and_a_url_selects_nats() {
        assert_eq!(BusSettings::choose(None, None), Ok(BusSettings::Memory));
        let nats = NatsSettings::new("nats://h:4222");
        assert_eq!(
            BusSettings::choose(None, Some(nats.clone())).map(|s| s.backend()),
            Ok(BusBackend::Nats)
        );
        assert_eq!(
            BusSettings::choose(Some("memory".parse().unwrap()), Some(nats)),
            Ok(BusSettings::Memory)
        );
        let err = BusSettings::choose(Some(BusBackend::Nats), None).unwrap_err();
        assert!(err.to_string().contains("NATS_URL"), "{err}");
        assert!("kafka".parse::<BusBackend>().is_err());
    }

    #[test]
    fn settings_deserialize_with_the_default_layout() {
        let nats: BusSettings =
            serde_json::from_str(r#"{"backend": "nats", "url": "nats://h:4222"}"#).unwrap();
        assert_eq!(nats, BusSettings::Nats(NatsSettings::new("nats://h:4222")));
        assert!(serde_json::from_str::<BusSettings>(r#"{"backend": "nats"}"#).is_err());
        assert!(serde_json::from_str::<BusSettings>(r#"{"backend": "kafka"}"#).is_err());
    }

    #[test]
    fn passwords_never_print() {
        let nats = BusSettings::Nats(NatsSettings::new("nats://u:hunter2@h:4222"));
        for printed in [format!("{nats}"), format!("{nats:?}")] {
            assert!(!printed.contains("hunter2"), "{printed}");
        }
    }

    #[tokio::test]
    async fn memory_settings_connect_an_in_memory_bus() {
        let bus = BusSettings::Memory.connect().await.unwrap();
        assert_eq!(bus.backend(), BusBackend::Memory);
        assert!(bus.memory().is_some());
    }
}
