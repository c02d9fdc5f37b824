//! The whole bus conformance suite against a real nats-server with JetStream (`NATS_URL`,
//! default `nats://127.0.0.1:4222`). Each case gets its own streams and subject prefix, so
//! cases run in parallel against one server.
#![cfg(feature = "nats")]

mod support;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ticketing_core::Bus;
use ticketing_core::conformance::bus::{BusCapabilities, BusFactory};

struct Nats;

#[async_trait]
impl BusFactory for Nats {
    async fn bus(&self) -> Arc<dyn Bus> {
        support::isolated_bus("CONF").await.as_dyn()
    }

    fn capabilities(&self) -> BusCapabilities {
        BusCapabilities {
            timing_slack: Duration::from_millis(1500),
            short_ack_wait: Duration::from_secs(1),
        }
    }
}

ticketing_core::bus_conformance_tests!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    factory = Nats
);
