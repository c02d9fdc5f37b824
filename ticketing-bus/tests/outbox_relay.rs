//! The outbox relay over the in-memory outbox and bus: message ids, removal only after the
//! broker confirmed, per-record order, one active relay, prompt wake-up.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use ticketing_bus::memory::InMemoryBus;
use ticketing_core::outbox::{Outbox, OutboxEvent, OutboxId, RelayOptions, round, spawn_relay};
use ticketing_core::{OutgoingMessage, StoreError};
use ticketing_store::memory::InMemoryOutbox;
use tokio_util::sync::CancellationToken;

fn event(subject: &str, key: &str, n: u32) -> OutgoingMessage {
    OutgoingMessage::new(subject, format!("{{\"key\":\"{key}\",\"n\":{n}}}"))
        .with_message_id(format!("{subject}:{key}:{n}"))
}

/// `(key, n)` of every message on `subject`, in publish order.
fn published(bus: &InMemoryBus, subject: &str) -> Vec<(String, u64)> {
    bus.messages(subject)
        .iter()
        .map(|m| {
            let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
            (
                v["key"].as_str().unwrap().to_owned(),
                v["n"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn the_relay_publishes_with_message_ids_and_forgets_what_the_broker_confirmed() {
    let outbox = InMemoryOutbox::new();
    let bus = InMemoryBus::new();
    outbox.append("a", [event("s", "a", 0), event("s", "a", 1)]);
    outbox.append("b", [event("s", "b", 0)]);
    let report = round(&outbox, &bus, 256, 256).await;
    assert_eq!(
        (report.published, report.failed, report.full),
        (3, false, false)
    );
    assert!(outbox.is_empty());
    let ids: Vec<_> = bus.messages("s").iter().map(|m| m.headers.len()).collect();
    assert_eq!(ids.len(), 3);
    // Published again (as after a crash), the broker keeps one copy of each.
    outbox.append("a", [event("s", "a", 0)]);
    round(&outbox, &bus, 256, 256).await;
    assert_eq!(bus.messages("s").len(), 3);
}

#[tokio::test]
async fn a_failed_publish_holds_back_the_later_events_of_its_record_only() {
    let outbox = InMemoryOutbox::new();
    let bus = InMemoryBus::new();
    outbox.append("a", [event("fails", "a", 0)]);
    outbox.append("b", [event("ok", "b", 0)]);
    outbox.append("a", [event("ok", "a", 1)]);
    bus.faults().fail_next_publish("fails");
    let report = round(&outbox, &bus, 256, 256).await;
    assert!(report.failed);
    assert_eq!(report.published, 1, "b went out");
    assert_eq!(published(&bus, "ok"), vec![("b".to_owned(), 0)]);
    assert_eq!(outbox.len(), 2, "a's two events wait, in order");
    let report = round(&outbox, &bus, 256, 256).await;
    assert_eq!((report.published, report.failed), (2, false));
    assert_eq!(published(&bus, "fails"), vec![("a".to_owned(), 0)]);
    assert_eq!(
        published(&bus, "ok"),
        vec![("b".to_owned(), 0), ("a".to_owned(), 1)]
    );
}

/// An outbox whose next `remove` fails, as if the relay died after publishing.
struct ForgetsOnce {
    inner: InMemoryOutbox,
    failed: AtomicBool,
}

#[async_trait]
impl Outbox for ForgetsOnce {
    async fn pending(&self, limit: usize) -> Result<Vec<OutboxEvent>, StoreError> {
        self.inner.pending(limit).await
    }
    async fn remove(&self, ids: &[OutboxId]) -> Result<(), StoreError> {
        if !self.failed.swap(true, Ordering::SeqCst) {
            return Err(StoreError::backend(
                "test",
                "the relay died before removing",
            ));
        }
        self.inner.remove(ids).await
    }
}

#[tokio::test]
async fn events_published_but_not_removed_go_again_and_the_broker_keeps_one_copy() {
    let outbox = ForgetsOnce {
        inner: InMemoryOutbox::new(),
        failed: AtomicBool::new(false),
    };
    let bus = InMemoryBus::new();
    outbox
        .inner
        .append("a", [event("s", "a", 0), event("s", "a", 1)]);
    let first = round(&outbox, &bus, 256, 256).await;
    assert!(first.failed);
    assert_eq!(outbox.inner.len(), 2, "still pending");
    let second = round(&outbox, &bus, 256, 256).await;
    assert_eq!((second.published, second.failed), (2, false));
    assert!(outbox.inner.is_empty());
    assert_eq!(
        published(&bus, "s"),
        vec![("a".to_owned(), 0), ("a".to_owned(), 1)],
        "each stored once"
    );
}

/// As [`event`], without a message id: a second publish would be stored twice.
fn plain(subject: &str, key: &str, n: u64) -> OutgoingMessage {
    OutgoingMessage::new(subject, format!("{{\"key\":\"{key}\",\"n\":{n}}}"))
}

async fn drained(outbox: &InMemoryOutbox) {
    tokio::time::timeout(Duration::from_secs(60), async {
        while !outbox.is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("everything is published");
}

#[tokio::test(start_paused = true)]
async fn of_two_relays_one_publishes_at_a_time_in_record_order_and_the_other_takes_over() {
    let outbox = InMemoryOutbox::new();
    let bus = InMemoryBus::new();
    let options = RelayOptions {
        batch: 7,
        ..RelayOptions::default()
    };
    // A broker that takes a millisecond to confirm each publish, so relays interleave.
    bus.faults().slow_publishes("*", Duration::from_millis(1));
    let slow = bus.as_dyn();
    let relay = |name: &str| {
        spawn_relay(
            Arc::new(outbox.clone()),
            slow.clone(),
            name,
            options,
            CancellationToken::new(),
        )
    };
    let (one, two) = (relay("one"), relay("two"));
    for n in 0..30 {
        for key in ["a", "b", "c"] {
            // No message ids: a second relay publishing the same event would show.
            outbox.append(key, [plain("s", key, n)]);
        }
        tokio::task::yield_now().await;
    }
    drained(&outbox).await;
    // The first holder goes away; the other takes over once its lease runs out.
    one.stop().await;
    for n in 30..40 {
        outbox.append("a", [plain("s", "a", n)]);
    }
    drained(&outbox).await;
    two.stop().await;
    let all = published(&bus, "s");
    assert_eq!(all.len(), 100, "each published once");
    for (key, count) in [("a", 40), ("b", 30), ("c", 30)] {
        let order: Vec<u64> = all
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, n)| *n)
            .collect();
        assert_eq!(order, (0..count).collect::<Vec<_>>(), "key {key}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_commit_wakes_the_relay_without_waiting_for_its_poll() {
    let outbox = InMemoryOutbox::new();
    let bus = InMemoryBus::new();
    let options = RelayOptions {
        poll: Duration::from_secs(3600),
        ..RelayOptions::default()
    };
    let relay = spawn_relay(
        Arc::new(outbox.clone()),
        bus.as_dyn(),
        "relay",
        options,
        CancellationToken::new(),
    );
    // Let the relay find the outbox empty and go to sleep on its hour-long poll.
    tokio::time::sleep(Duration::from_millis(10)).await;
    outbox.append("a", [event("s", "a", 0)]);
    let started = tokio::time::Instant::now();
    while bus.messages("s").is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "the relay waited for its poll"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    relay.stop().await;
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Shipped {
    parcel: u32,
}

impl ticketing_core::Event for Shipped {
    const SUBJECT: &'static str = "parcel:shipped";
    fn message_id(&self) -> String {
        format!("{}:{}", Self::SUBJECT, self.parcel)
    }
}

#[tokio::test]
async fn the_envelope_is_made_with_the_change_and_the_relay_publishes_it_unchanged() {
    let outbox = InMemoryOutbox::new();
    let bus = InMemoryBus::new();
    let committed = ticketing_core::outbox::announce(&Shipped { parcel: 7 }).unwrap();
    let stamped = committed[0].headers.clone();
    outbox.append("parcel:7", committed);
    // The relay runs a while after the commit (real time: `ce-time` is wall-clock time).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let relayed_at = chrono::Utc::now();
    round(&outbox, &bus, 256, 256).await;
    let published = bus.messages("parcel:shipped");
    assert_eq!(published.len(), 1);
    assert_eq!(
        published[0].headers, stamped,
        "the relay adds or changes nothing"
    );
    let time = chrono::DateTime::parse_from_rfc3339(&stamped[ticketing_core::envelope::TIME])
        .expect("ce-time");
    assert!(
        time < relayed_at - chrono::Duration::seconds(1),
        "ce-time {time} is the change's, before the relay's {relayed_at}"
    );
}

/// One process's view of an outbox that another process shares: the events and the lease are
/// common, but a write wakes only the relay of the process that made it (as with MongoDB).
struct ProcessView {
    shared: InMemoryOutbox,
    wake: tokio::sync::Notify,
}

impl ProcessView {
    fn of(shared: &InMemoryOutbox) -> Arc<Self> {
        Arc::new(ProcessView {
            shared: shared.clone(),
            wake: tokio::sync::Notify::new(),
        })
    }

    fn append(&self, key: &str, messages: impl IntoIterator<Item = OutgoingMessage>) {
        self.shared.append(key, messages);
        self.wake.notify_one();
    }
}

#[async_trait]
impl Outbox for ProcessView {
    async fn pending(&self, limit: usize) -> Result<Vec<OutboxEvent>, StoreError> {
        self.shared.pending(limit).await
    }

    async fn remove(&self, ids: &[OutboxId]) -> Result<(), StoreError> {
        self.shared.remove(ids).await
    }

    async fn changed(&self) {
        self.wake.notified().await;
    }

    async fn lease(&self, holder: &str, ttl: Duration) -> Result<bool, StoreError> {
        self.shared.lease(holder, ttl).await
    }
}

#[tokio::test]
async fn a_write_in_a_process_whose_relay_stands_by_is_published_at_once_by_the_lease_holder() {
    let shared = InMemoryOutbox::new();
    let bus = InMemoryBus::new();
    let (here, there) = (ProcessView::of(&shared), ProcessView::of(&shared));
    // Polls a minute apart: only a wake-up explains an event published within seconds.
    let options = RelayOptions {
        poll: Duration::from_secs(60),
        lease_ttl: Duration::from_secs(60),
        name: "parcels",
        ..RelayOptions::default()
    };
    let token = CancellationToken::new();
    let holder = spawn_relay(here.clone(), bus.as_dyn(), "holder", options, token.clone());
    // The holder takes the lease (its first round publishes what is there: nothing).
    here.append("p", [event("parcel:moved", "p", 0)]);
    tokio::time::timeout(Duration::from_secs(5), async {
        while bus.messages("parcel:moved").is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the holder publishes its own process's write");
    let standby = spawn_relay(
        there.clone(),
        bus.as_dyn(),
        "standby",
        options,
        token.clone(),
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    there.append("p", [event("parcel:moved", "p", 1)]);
    tokio::time::timeout(Duration::from_secs(5), async {
        while bus.messages("parcel:moved").len() < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the other process's write is published within seconds, not at the next poll");
    assert_eq!(
        published(&bus, "parcel:moved"),
        vec![("p".to_owned(), 0), ("p".to_owned(), 1)]
    );
    standby.stop().await;
    holder.stop().await;
}
