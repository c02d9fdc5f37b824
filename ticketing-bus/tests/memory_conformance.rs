//! The whole bus conformance suite against the in-memory bus, on a paused clock.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ticketing_bus::memory::InMemoryBus;
use ticketing_core::Bus;
use ticketing_core::conformance::bus::{BusCapabilities, BusFactory};

struct Memory;

#[async_trait]
impl BusFactory for Memory {
    async fn bus(&self) -> Arc<dyn Bus> {
        InMemoryBus::new().as_dyn()
    }

    fn capabilities(&self) -> BusCapabilities {
        BusCapabilities {
            timing_slack: Duration::from_millis(5),
            short_ack_wait: Duration::from_secs(1),
            several_subjects: true,
            ordered: true,
        }
    }
}

ticketing_core::bus_conformance_tests!(
    #[tokio::test(start_paused = true)]
    factory = Memory
);

/// The same suite on real time and a multi-threaded runtime: the bus must not depend on a
/// paused clock or a single thread.
mod real_time {
    use super::Memory;

    ticketing_core::bus_conformance_tests!(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        factory = Memory
    );
}
