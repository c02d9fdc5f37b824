//! Test helpers for the NATS backend.
#![allow(dead_code, unreachable_pub)]

use std::time::{SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use ticketing_bus::nats::{NatsBus, NatsBusConfig, NatsStorage};
use ticketing_core::Id;

/// The server the tests use.
pub fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A bus on streams no other test uses: `{kind}_{seconds}_{unique}`. Streams of earlier runs
/// older than an hour are deleted on the way.
pub async fn isolated_bus(kind: &str) -> NatsBus {
    let name = format!("{kind}_{}_{}", now_secs(), Id::new()).to_uppercase();
    let config = NatsBusConfig {
        storage: NatsStorage::Memory,
        ..NatsBusConfig::isolated(nats_url(), &name)
    };
    let bus = NatsBus::connect(config).await.unwrap_or_else(|e| {
        panic!(
            "NATS with JetStream must be running at {} (scripts/test starts it): {e}",
            nats_url()
        )
    });
    delete_stale_streams(&bus, kind).await;
    bus
}

async fn delete_stale_streams(bus: &NatsBus, kind: &str) {
    let js = async_nats::jetstream::new(bus.client().clone());
    let mut names = js.stream_names();
    let mut stale = Vec::new();
    while let Some(Ok(name)) = names.next().await {
        let mut parts = name.split('_');
        if parts.next() != Some(kind) {
            continue;
        }
        if let Some(Ok(secs)) = parts.next().map(str::parse::<u64>) {
            if secs + 3600 < now_secs() {
                stale.push(name);
            }
        }
    }
    for name in stale {
        let _ = js.delete_stream(&name).await;
    }
}

/// Polls `done` every 20 ms; panics after `limit`.
pub async fn wait_until(limit: std::time::Duration, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
