//! Test helpers for the NATS backend, on the live test kit.
#![allow(dead_code, unreachable_pub)]

use ticketing_bus::nats::{NatsBus, NatsBusConfig, NatsStorage};

pub use ticketing_test_live::nats_url;

/// A bus on streams no other test uses (in memory on the server); streams of `kind` older than
/// an hour are deleted on the way.
pub async fn isolated_bus(kind: &str) -> NatsBus {
    isolated_bus_at(&nats_url(), kind).await
}

/// As [`isolated_bus`], on the server at `url`.
pub async fn isolated_bus_at(url: &str, kind: &str) -> NatsBus {
    isolated_bus_with(url, kind, None).await
}

/// As [`isolated_bus_at`], its events stream in `partitions` (nats-server 2.10 or later).
pub async fn isolated_bus_with(url: &str, kind: &str, partitions: Option<u32>) -> NatsBus {
    let name = ticketing_test_live::fresh_nats_stream_at(url, kind).await;
    let config = NatsBusConfig {
        storage: NatsStorage::Memory,
        partitions,
        ..NatsBusConfig::isolated(url, &name)
    };
    NatsBus::connect(config).await.unwrap_or_else(|e| {
        panic!("NATS with JetStream must be running at {url} (scripts/test starts it): {e}")
    })
}

/// The conformance suite's factory on the server at `url`: isolated streams named after `kind`
/// per case, and the slack a real server over loopback needs.
pub struct NatsAt {
    /// The server.
    pub url: String,
    /// The streams' name prefix.
    pub kind: &'static str,
    /// Whether the server has consumers of several subjects (2.10 or later).
    pub several_subjects: bool,
}

impl NatsAt {
    /// The factory on the server at `url`, asking it its version.
    pub async fn new(url: String, kind: &'static str) -> Self {
        let client = async_nats::connect(&url).await.unwrap_or_else(|e| {
            panic!("NATS must be running at {url} (scripts/test starts it): {e}")
        });
        let version = client.server_info().version;
        let mut parts = version.trim_start_matches('v').split('.');
        let mut next = || parts.next().and_then(|p| p.parse::<u64>().ok());
        let release = (next(), next());
        NatsAt {
            url,
            kind,
            several_subjects: release >= (Some(2), Some(10)),
        }
    }
}

#[async_trait::async_trait]
impl ticketing_core::conformance::bus::BusFactory for NatsAt {
    async fn bus(&self) -> std::sync::Arc<dyn ticketing_core::Bus> {
        // A server with consumers of several subjects runs the whole suite on a partitioned
        // stream: every event goes through the keyed subjects and the transform.
        let partitions = self.several_subjects.then_some(4);
        isolated_bus_with(&self.url, self.kind, partitions)
            .await
            .as_dyn()
    }

    fn capabilities(&self) -> ticketing_core::conformance::bus::BusCapabilities {
        ticketing_core::conformance::bus::BusCapabilities {
            timing_slack: std::time::Duration::from_millis(1500),
            short_ack_wait: std::time::Duration::from_secs(1),
            several_subjects: self.several_subjects,
            ordered: self.several_subjects,
        }
    }
}
