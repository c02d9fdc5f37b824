//! Shared workloads of the ticketing benchmarks.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use ticketing_core::{
    Bus, Event, HandlerError, Listener, ListenerHandle, ListenerOptions, MessageContext,
    OutgoingMessage, spawn_listener,
};
use tokio::sync::Notify;

/// The benchmark event: roughly the size of a `ticket:updated` payload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchEvent {
    /// Sequence number.
    pub n: u64,
    /// Filler, like a ticket title.
    pub title: String,
    /// A price.
    pub price: u64,
    /// An owner id.
    pub user_id: String,
}

impl Event for BenchEvent {
    const SUBJECT: &'static str = "bench:event";
    fn message_id(&self) -> String {
        format!("bench:event:{}", self.n)
    }
}

/// `count` encoded events, built once so every workload moves the same bytes.
pub fn encoded_events(count: u64) -> Vec<bytes::Bytes> {
    (0..count)
        .map(|n| {
            let event = BenchEvent {
                n,
                title: "A concert in the park".to_owned(),
                price: 2_000,
                user_id: "5f1a2b3c4d5e6f7a8b9c0d1e".to_owned(),
            };
            bytes::Bytes::from(serde_json::to_vec(&event).expect("encode"))
        })
        .collect()
}

/// Counts handled events and wakes a waiter once `target` is reached.
#[derive(Debug, Default)]
pub struct Countdown {
    handled: AtomicU64,
    target: AtomicU64,
    done: Notify,
}

impl Countdown {
    /// A countdown to `target`.
    pub fn new(target: u64) -> Arc<Self> {
        let countdown = Countdown::default();
        countdown.target.store(target, Ordering::SeqCst);
        Arc::new(countdown)
    }

    /// Records one handled event.
    pub fn hit(&self) {
        if self.handled.fetch_add(1, Ordering::AcqRel) + 1 == self.target.load(Ordering::Acquire) {
            self.done.notify_one();
        }
    }

    /// How many were handled.
    pub fn handled(&self) -> u64 {
        self.handled.load(Ordering::Acquire)
    }

    /// Waits for the target.
    pub async fn wait(&self) {
        if self.handled() >= self.target.load(Ordering::Acquire) {
            return;
        }
        self.done.notified().await;
    }
}

/// A listener that decodes each event and counts it.
pub struct CountingListener {
    /// Its queue group.
    pub group: String,
    /// Shared with the workload.
    pub countdown: Arc<Countdown>,
    /// Options.
    pub options: ListenerOptions,
}

#[async_trait]
impl Listener for CountingListener {
    type Event = BenchEvent;

    fn queue_group(&self) -> &str {
        &self.group
    }

    fn options(&self) -> ListenerOptions {
        self.options
    }

    async fn on_message(
        &self,
        event: BenchEvent,
        _: &MessageContext<'_>,
    ) -> Result<(), HandlerError> {
        std::hint::black_box(event);
        self.countdown.hit();
        Ok(())
    }
}

/// Publishes `events` through `bus` to `groups` counting listeners and waits until every group
/// handled every event.
pub async fn bus_round_trip(
    bus: Arc<dyn Bus>,
    events: &[bytes::Bytes],
    groups: usize,
    options: ListenerOptions,
) {
    let countdown = Countdown::new(events.len() as u64 * groups as u64);
    let mut handles: Vec<ListenerHandle> = Vec::new();
    for g in 0..groups {
        let listener = CountingListener {
            group: format!("group-{g}"),
            countdown: countdown.clone(),
            options,
        };
        handles.push(spawn_listener(&bus, listener).await.expect("listener"));
    }
    for payload in events {
        bus.publish(OutgoingMessage::new(BenchEvent::SUBJECT, payload.clone()))
            .await
            .expect("publish");
    }
    countdown.wait().await;
    for handle in handles {
        handle.stop().await;
    }
}

/// The same events through bare unbounded tokio channels, one per group, each consumer decoding
/// the event: the limit a transport can approach.
pub async fn mpsc_round_trip(events: &[bytes::Bytes], groups: usize) {
    let countdown = Countdown::new(events.len() as u64 * groups as u64);
    let mut senders = Vec::new();
    let mut consumers = Vec::new();
    for _ in 0..groups {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<bytes::Bytes>();
        senders.push(tx);
        let countdown = countdown.clone();
        consumers.push(tokio::spawn(async move {
            while let Some(payload) = rx.recv().await {
                let event: BenchEvent = serde_json::from_slice(&payload).expect("decode");
                std::hint::black_box(event);
                countdown.hit();
            }
        }));
    }
    for payload in events {
        for tx in &senders {
            tx.send(payload.clone()).expect("send");
        }
    }
    drop(senders);
    countdown.wait().await;
    for consumer in consumers {
        consumer.await.expect("consumer");
    }
}

/// The runtime the benchmarks run on: two workers, as the machine has two cores.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Peak resident memory of this process in KiB (`VmHWM`), where the OS tells it.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}
