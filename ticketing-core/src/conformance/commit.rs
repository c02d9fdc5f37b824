//! The outbox conformance suite for a service's own records: a change and the events that
//! announce it commit together or not at all, events of one record leave in commit order, and
//! the relay publishes every event once.
//!
//! It runs over a [`Committer`]: a versioned record of no ticketing domain, written the way a
//! service of another domain joins the backend's outbox — inside its own PostgreSQL transaction,
//! in its own MongoDB document, under its own lock in memory. Run them all with
//! [`commit_conformance_tests!`](crate::commit_conformance_tests).

#![allow(missing_docs)]

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::future::join_all;
use tokio_util::sync::CancellationToken;

use crate::bus::{
    Bus, BusError, DeadLetter, OutgoingMessage, PublishAck, SubscribeOptions, Subscription,
};
use crate::outbox::{Outbox, RelayOptions, round, spawn_relay};
use crate::store::StoreError;
use crate::version::Version;

/// A broker that keeps what it is sent, dropping a repeated message id as JetStream does.
#[derive(Default)]
pub struct RecordingBus {
    stored: Mutex<Vec<OutgoingMessage>>,
    seen: Mutex<HashSet<String>>,
}

impl RecordingBus {
    /// Every message stored, in order.
    pub fn stored(&self) -> Vec<OutgoingMessage> {
        self.stored.lock().expect("lock").clone()
    }
}

#[async_trait]
impl Bus for RecordingBus {
    async fn publish(&self, message: OutgoingMessage) -> Result<PublishAck, BusError> {
        let duplicate = match &message.message_id {
            Some(id) => !self.seen.lock().expect("lock").insert(id.clone()),
            None => false,
        };
        let mut stored = self.stored.lock().expect("lock");
        if !duplicate {
            stored.push(message);
        }
        Ok(PublishAck {
            sequence: stored.len() as u64,
            duplicate,
        })
    }

    async fn subscribe(
        &self,
        _subject: &str,
        _group: &str,
        _options: SubscribeOptions,
    ) -> Result<Box<dyn Subscription>, BusError> {
        Err(BusError::backend(
            "recording",
            "the recording bus only records",
        ))
    }

    async fn dead_letters(&self) -> Result<Vec<DeadLetter>, BusError> {
        Ok(Vec::new())
    }

    async fn redrive(&self, _id: u64) -> Result<(), BusError> {
        Ok(())
    }
}

/// Two relays of `outbox` into `bus` at once, polling every 20 ms with a 300 ms lease; their
/// handles stop them.
pub(crate) fn two_relays(
    outbox: &Arc<dyn Outbox>,
    bus: &Arc<RecordingBus>,
) -> Vec<crate::outbox::RelayHandle> {
    let options = RelayOptions {
        poll: Duration::from_millis(20),
        lease_ttl: Duration::from_millis(300),
        ..RelayOptions::default()
    };
    let token = CancellationToken::new();
    ["relay-a", "relay-b"]
        .map(|holder| {
            let bus: Arc<dyn Bus> = bus.clone();
            spawn_relay(outbox.clone(), bus, holder, options, token.clone())
        })
        .into()
}

/// What `bus` stored once it holds `count` messages (20 s at most) and `relays` have stopped;
/// asserts there are exactly `count`.
pub(crate) async fn stored_once(
    bus: &RecordingBus,
    count: usize,
    relays: Vec<crate::outbox::RelayHandle>,
) -> Vec<OutgoingMessage> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while bus.stored().len() < count && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for relay in relays {
        relay.stop().await;
    }
    let stored = bus.stored();
    assert_eq!(stored.len(), count, "every event once");
    stored
}

/// Publishes the first three pending events as a relay that stopped before forgetting them
/// would have, then runs a round: the ten pending events go once, and the outbox is empty.
pub(crate) async fn a_round_after_a_stopped_relay(outbox: &dyn Outbox) -> Vec<OutgoingMessage> {
    let bus = RecordingBus::default();
    for event in outbox.pending(3).await.expect("pending") {
        bus.publish(event.message).await.expect("publish");
    }
    let report = round(outbox, &bus, 256, 256).await;
    assert_eq!((report.published, report.failed), (10, false));
    assert!(pending(outbox).await.is_empty(), "the outbox is empty");
    let stored = bus.stored();
    assert_eq!(stored.len(), 10, "one copy of each event");
    stored
}

/// A service's own versioned records, each change committed with its events into the
/// backend's outbox in one unit. The outbox key of a record's events names its id.
#[async_trait]
pub trait Committer: Send + Sync {
    /// Creates record `id` at version 0 with `events`, in one unit; `AlreadyExists` (and no
    /// event) if the id is taken.
    async fn create(&self, id: &str, events: Vec<OutgoingMessage>) -> Result<(), StoreError>;
    /// Moves record `id` from version `expected` to `expected + 1` with `events`, in one unit;
    /// `VersionConflict` (nothing written, no event) if it is not at `expected`.
    async fn update(
        &self,
        id: &str,
        expected: Version,
        events: Vec<OutgoingMessage>,
    ) -> Result<(), StoreError>;
    /// The version stored, if any.
    async fn version(&self, id: &str) -> Result<Option<Version>, StoreError>;
    /// The outbox the changes commit to.
    fn outbox(&self) -> Arc<dyn Outbox>;
}

/// Hands out fresh committers for the suite.
#[async_trait]
pub trait CommitFactory: Send + Sync {
    /// A fresh, empty place to commit to, sharing nothing with any other call.
    async fn committer(&self) -> Arc<dyn Committer>;
}

/// The event of version `version` of record `id`: subject `parcel:moved`, the version as the
/// payload, a unique message id.
pub fn event(id: &str, version: Version) -> OutgoingMessage {
    OutgoingMessage::new("parcel:moved", version.to_string())
        .with_header("parcel", id)
        .with_message_id(format!("parcel:moved:{id}:{version}"))
}

fn version_of(message: &OutgoingMessage) -> u64 {
    std::str::from_utf8(&message.payload)
        .expect("utf-8")
        .parse()
        .expect("version")
}

fn fresh_id() -> String {
    super::replica::Shipment::new_id()
}

/// `(key, version)` of every pending event, in the order the outbox hands them out.
pub(crate) async fn pending(outbox: &dyn Outbox) -> Vec<(String, u64)> {
    outbox
        .pending(10_000)
        .await
        .expect("pending")
        .iter()
        .map(|e| (e.key.clone(), version_of(&e.message)))
        .collect()
}

/// Asserts that `outbox` holds the events of `records` records, each's versions 0 to `last`
/// in commit order.
pub(crate) async fn assert_pending_in_order(outbox: &dyn Outbox, records: usize, last: u64) {
    let mut by_key: HashMap<String, Vec<u64>> = HashMap::new();
    for (key, version) in pending(outbox).await {
        by_key.entry(key).or_default().push(version);
    }
    assert_eq!(by_key.len(), records);
    for versions in by_key.values() {
        assert_eq!(versions, &(0..=last).collect::<Vec<u64>>());
    }
}

/// Changes each of `ids` `times` times, a writer per record, all at once, each change
/// `pause` after the one before.
async fn update_each(committer: &Arc<dyn Committer>, ids: &[String], times: u64, pause: Duration) {
    join_all(ids.iter().map(|id| async move {
        for version in 0..times {
            committer
                .update(id, version, vec![event(id, version + 1)])
                .await
                .expect("update");
            if !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
        }
    }))
    .await;
}

/// `n` records, each created with its version-0 event.
async fn created(committer: &dyn Committer, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..n {
        let id = fresh_id();
        committer
            .create(&id, vec![event(&id, 0)])
            .await
            .expect("create");
        ids.push(id);
    }
    ids
}

pub async fn a_change_and_its_events_commit_together(factory: &dyn CommitFactory) {
    let committer = factory.committer().await;
    let id = fresh_id();
    committer
        .create(&id, vec![event(&id, 0)])
        .await
        .expect("create");
    committer
        .update(&id, 0, vec![event(&id, 1)])
        .await
        .expect("update");
    assert_eq!(committer.version(&id).await.expect("version"), Some(1));
    let events = committer.outbox().pending(100).await.expect("pending");
    assert_eq!(events.len(), 2);
    assert!(
        events[0].key.contains(&id),
        "the key {} names the record",
        events[0].key
    );
    assert!(
        events.iter().all(|e| e.key == events[0].key),
        "one key per record"
    );
    assert_eq!(
        events
            .iter()
            .map(|e| version_of(&e.message))
            .collect::<Vec<_>>(),
        [0, 1]
    );
    let first = &events[0].message;
    assert_eq!(first.subject, "parcel:moved");
    assert_eq!(
        first.headers.get("parcel").map(String::as_str),
        Some(id.as_str())
    );
    assert_eq!(
        first.message_id,
        event(&id, 0).message_id,
        "message ids are kept"
    );
}

pub async fn a_refused_change_commits_no_event(factory: &dyn CommitFactory) {
    let committer = factory.committer().await;
    let id = fresh_id();
    committer
        .create(&id, vec![event(&id, 0)])
        .await
        .expect("create");
    let stale = committer.update(&id, 3, vec![event(&id, 4)]).await;
    assert!(
        matches!(stale, Err(StoreError::VersionConflict { .. })),
        "{stale:?}"
    );
    let taken = committer.create(&id, vec![event(&id, 0)]).await;
    assert!(
        matches!(taken, Err(StoreError::AlreadyExists { .. })),
        "{taken:?}"
    );
    assert_eq!(committer.version(&id).await.expect("version"), Some(0));
    assert_eq!(
        pending(&*committer.outbox()).await.len(),
        1,
        "only the creation's event"
    );
}

pub async fn events_of_one_record_are_pending_in_commit_order(factory: &dyn CommitFactory) {
    let committer = factory.committer().await;
    let ids = created(&*committer, 4).await;
    // Each record changed ten times by a writer of its own, the four writers at once.
    update_each(&committer, &ids, 10, Duration::ZERO).await;
    assert_pending_in_order(&*committer.outbox(), 4, 10).await;
}

pub async fn several_events_of_one_change_keep_their_order(factory: &dyn CommitFactory) {
    let committer = factory.committer().await;
    let id = fresh_id();
    committer
        .create(&id, (0..5).map(|n| event(&id, n)).collect())
        .await
        .expect("create");
    let versions: Vec<u64> = pending(&*committer.outbox())
        .await
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    assert_eq!(versions, [0, 1, 2, 3, 4]);
}

pub async fn the_relay_publishes_everything_once_and_empties_the_outbox(
    factory: &dyn CommitFactory,
) {
    let committer = factory.committer().await;
    let ids = created(&*committer, 5).await;
    for id in &ids {
        committer
            .update(id, 0, vec![event(id, 1)])
            .await
            .expect("update");
    }
    // A relay stopped after publishing, before forgetting: the next round publishes again
    // with the same ids, and the broker keeps one copy.
    let stored = a_round_after_a_stopped_relay(&*committer.outbox()).await;
    for id in ids {
        let versions: Vec<u64> = stored
            .iter()
            .filter(|m| m.headers.get("parcel") == Some(&id))
            .map(version_of)
            .collect();
        assert_eq!(versions, vec![0, 1], "per-record order");
    }
}

pub async fn two_relays_at_once_keep_per_record_order(factory: &dyn CommitFactory) {
    let committer = factory.committer().await;
    let bus = Arc::new(RecordingBus::default());
    let relays = two_relays(&committer.outbox(), &bus);
    let ids = created(&*committer, 4).await;
    update_each(&committer, &ids, 8, Duration::from_millis(5)).await;
    let stored = stored_once(&bus, 36, relays).await;
    for id in &ids {
        let versions: Vec<u64> = stored
            .iter()
            .filter(|m| m.headers.get("parcel") == Some(id))
            .map(version_of)
            .collect();
        assert_eq!(versions, (0..=8).collect::<Vec<u64>>(), "per-record order");
    }
    assert!(pending(&*committer.outbox()).await.is_empty());
}

pub async fn a_commit_wakes_the_relay(factory: &dyn CommitFactory) {
    let committer = factory.committer().await;
    let outbox = committer.outbox();
    let id = fresh_id();
    committer
        .create(&id, vec![event(&id, 0)])
        .await
        .expect("create");
    tokio::time::timeout(Duration::from_secs(5), outbox.changed())
        .await
        .expect("the commit wakes the relay");
}

/// Expands one test per commit case, each calling the case with `factory`.
#[macro_export]
macro_rules! commit_conformance_tests {
    (#[$attr:meta] factory = $factory:expr $(,)?) => {
        $crate::__conformance_cases!(
            #[$attr] [$factory] commit:
            a_change_and_its_events_commit_together
            a_refused_change_commits_no_event
            events_of_one_record_are_pending_in_commit_order
            several_events_of_one_change_keep_their_order
            the_relay_publishes_everything_once_and_empties_the_outbox
            two_relays_at_once_keep_per_record_order
            a_commit_wakes_the_relay
        );
    };
}
