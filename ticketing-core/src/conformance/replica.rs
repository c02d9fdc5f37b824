//! The replica conformance suite: the versioned `find_by_event` contract of a
//! [`ReplicaStore`], over a record type that is not a ticket.
//!
//! A backend author runs it over [`Shipment`] (a record with a string id) by implementing
//! [`ShipmentStores`]; a user can run it over their own record type, by implementing
//! [`ReplicaFactory`] for it. Run them all with
//! [`replica_conformance_tests!`](crate::replica_conformance_tests):
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use ticketing_core::conformance::replica::{ReplicaFactory, Shipment};
//! # use ticketing_core::store::ReplicaStore;
//! # use ticketing_core::ReplicaStart;
//! struct MyStores;
//!
//! #[async_trait::async_trait]
//! impl ReplicaFactory for MyStores {
//!     type Record = Shipment;
//!     async fn store(&self, start: ReplicaStart) -> Arc<dyn ReplicaStore<Shipment>> {
//!         // a fresh, empty store of my backend
//! #       unimplemented!()
//!     }
//!     fn id(&self) -> String { Shipment::new_id() }
//!     fn record(&self, id: &String, version: u64, content: u64) -> Shipment {
//!         Shipment::new(id, version, content)
//!     }
//! }
//!
//! ticketing_core::replica_conformance_tests!(#[tokio::test] factory = MyStores);
//! # fn main() {}
//! ```

#![allow(missing_docs)]

use std::collections::VecDeque;
use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use futures::future::join_all;
use serde::{Deserialize, Serialize};

use crate::listener::HandlerError;
use crate::store::{Replica, ReplicaStore, StoreError, replicate, replicate_record};
use crate::version::{EventDisposition, ReplicaStart, Version};

/// A record of another domain: a shipment replicated from a carrier's service. Its id is a
/// string, its content a count and a carrier name derived from one number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Shipment {
    pub id: String,
    pub carrier: String,
    pub parcels: u64,
    pub version: Version,
}

impl Shipment {
    /// The shipment `id` at `version`, its content made from `content`.
    pub fn new(id: &str, version: Version, content: u64) -> Self {
        Shipment {
            id: id.to_owned(),
            carrier: format!("carrier-{content}"),
            parcels: content,
            version,
        }
    }

    /// A fresh id: unique within the process (`shp-<n>-<nanos>`).
    pub fn new_id() -> String {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        format!("shp-{}-{nanos}", NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

crate::replica!(Shipment, id: String, entity: "shipment");

/// Hands out fresh replica stores for the suite, and the records to put in them.
#[async_trait]
pub trait ReplicaFactory: Send + Sync {
    /// The record type the stores keep.
    type Record: Replica + PartialEq + Debug;
    /// A fresh, empty store that shares nothing with any other call, starting records it has not
    /// seen as `start` says.
    async fn store(&self, start: ReplicaStart) -> Arc<dyn ReplicaStore<Self::Record>>;
    /// A fresh id.
    fn id(&self) -> <Self::Record as Replica>::Id;
    /// The record `id` at `version`, its content made from `content` (different contents give
    /// different records).
    fn record(
        &self,
        id: &<Self::Record as Replica>::Id,
        version: Version,
        content: u64,
    ) -> Self::Record;
}

/// A factory of [`Shipment`] stores, for backend authors: implement `shipments` alone and the
/// suite runs over shipments.
#[async_trait]
pub trait ShipmentStores: Send + Sync {
    /// A fresh, empty store of shipments, starting records it has not seen as `start` says.
    async fn shipments(&self, start: ReplicaStart) -> Arc<dyn ReplicaStore<Shipment>>;
}

#[async_trait]
impl<T: ShipmentStores> ReplicaFactory for T {
    type Record = Shipment;
    async fn store(&self, start: ReplicaStart) -> Arc<dyn ReplicaStore<Shipment>> {
        self.shipments(start).await
    }
    fn id(&self) -> String {
        Shipment::new_id()
    }
    fn record(&self, id: &String, version: Version, content: u64) -> Shipment {
        Shipment::new(id, version, content)
    }
}

/// Versions 0 to 11, each twice, in the fixed scrambled order `seed` gives (xorshift).
fn scrambled_log(seed: u64) -> VecDeque<Version> {
    let mut log: VecDeque<Version> = (0..12).chain(0..12).collect();
    let mut state = seed;
    let mut scrambled = VecDeque::new();
    while !log.is_empty() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let at = (state % log.len() as u64) as usize;
        scrambled.push_back(log.remove(at).expect("in range"));
    }
    scrambled
}

/// Plays the scrambled log of `seed` on a fresh `FromFirst` store: `apply` writes each event
/// (the record at its version) and says whether it must come again later (a gap). The log must
/// converge to the in-order state.
async fn converges<F: ReplicaFactory>(
    factory: &F,
    seed: u64,
    mut apply: impl AsyncFnMut(
        &Arc<dyn ReplicaStore<F::Record>>,
        &<F::Record as Replica>::Id,
        Version,
        F::Record,
    ) -> bool,
) {
    let store = factory.store(ReplicaStart::FromFirst).await;
    let id = factory.id();
    let mut scrambled = scrambled_log(seed);
    let mut steps = 0;
    while let Some(version) = scrambled.pop_front() {
        steps += 1;
        assert!(steps < 10_000, "the log converges");
        let record = factory.record(&id, version, version * 7);
        if apply(&store, &id, version, record).await {
            scrambled.push_back(version);
        }
    }
    assert_eq!(
        store.get(&id).await.expect("get"),
        factory.record(&id, 11, 77)
    );
}

/// What `store` answers an event of `version` about `id`.
async fn disposition_of<R: Replica>(
    store: &dyn ReplicaStore<R>,
    id: &R::Id,
    version: Version,
) -> EventDisposition {
    store
        .find_by_event(id, version)
        .await
        .expect("find_by_event")
        .disposition
}

fn is_conflict(result: &Result<(), StoreError>) -> bool {
    matches!(result, Err(StoreError::VersionConflict { .. }))
}

pub async fn find_by_event_answers_apply_duplicate_and_gap<F: ReplicaFactory>(factory: &F) {
    let store = factory.store(ReplicaStart::FromFirst).await;
    let id = factory.id();
    assert_eq!(
        disposition_of(&*store, &id, 0).await,
        EventDisposition::Apply
    );
    assert_eq!(disposition_of(&*store, &id, 1).await, EventDisposition::Gap);
    store
        .apply(&factory.record(&id, 0, 1))
        .await
        .expect("apply 0");
    assert_eq!(
        disposition_of(&*store, &id, 0).await,
        EventDisposition::Duplicate
    );
    assert_eq!(
        disposition_of(&*store, &id, 1).await,
        EventDisposition::Apply
    );
    assert_eq!(disposition_of(&*store, &id, 2).await, EventDisposition::Gap);
    let lookup = store.find_by_event(&id, 1).await.expect("find_by_event");
    assert_eq!(lookup.current, Some(factory.record(&id, 0, 1)));
    assert_eq!(lookup.event, 1);
}

pub async fn applying_an_event_stores_the_record_at_the_events_version<F: ReplicaFactory>(
    factory: &F,
) {
    let store = factory.store(ReplicaStart::FromFirst).await;
    let id = factory.id();
    for version in 0..4 {
        let record = factory.record(&id, version, version + 10);
        store.apply(&record).await.expect("apply");
        assert_eq!(store.get(&id).await.expect("get"), record);
        assert_eq!(store.find(&id).await.expect("find"), Some(record));
    }
}

pub async fn applying_out_of_turn_is_a_version_conflict_and_writes_nothing<F: ReplicaFactory>(
    factory: &F,
) {
    let store = factory.store(ReplicaStart::FromFirst).await;
    let id = factory.id();
    assert!(
        is_conflict(&store.apply(&factory.record(&id, 1, 1)).await),
        "version 1 of a record not held"
    );
    assert_eq!(store.find(&id).await.expect("find"), None);
    let first = factory.record(&id, 0, 1);
    store.apply(&first).await.expect("apply 0");
    assert!(
        is_conflict(&store.apply(&factory.record(&id, 0, 2)).await),
        "version 0 again"
    );
    assert!(
        is_conflict(&store.apply(&factory.record(&id, 2, 2)).await),
        "version 2 on 0"
    );
    assert_eq!(store.get(&id).await.expect("get"), first, "nothing written");
}

pub async fn of_concurrent_appliers_of_one_event_exactly_one_wins<F: ReplicaFactory>(factory: &F) {
    let store = factory.store(ReplicaStart::FromFirst).await;
    let id = factory.id();
    store
        .apply(&factory.record(&id, 0, 0))
        .await
        .expect("apply 0");
    let results = join_all((0..16).map(|n| {
        let store = store.clone();
        let record = factory.record(&id, 1, n + 1);
        async move { store.apply(&record).await }
    }))
    .await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert!(results.iter().filter(|r| r.is_err()).all(is_conflict));
    assert_eq!(store.get(&id).await.expect("get").version(), 1);
}

pub async fn a_shuffled_event_log_with_duplicates_converges_to_the_in_order_state<
    F: ReplicaFactory,
>(
    factory: &F,
) {
    converges(
        factory,
        0x9e37_79b9_7f4a_7c15,
        async |store, id, version, record| match replicate(&**store, id, version, |_| Ok(record))
            .await
        {
            Ok(_) => false,
            Err(e) if e.is_retryable() => true,
            Err(e) => panic!("{e}"),
        },
    )
    .await;
}

pub async fn a_whole_record_written_first_has_the_outcomes_of_a_lookup_first<F: ReplicaFactory>(
    factory: &F,
) {
    for start in [ReplicaStart::FromFirst, ReplicaStart::FirstSeen] {
        let store = factory.store(start).await;
        let id = factory.id();
        let record = |version: Version| factory.record(&id, version, version * 7);
        if start == ReplicaStart::FromFirst {
            let gap = replicate_record(&*store, record(1)).await;
            assert!(gap.expect_err("a gap").is_retryable(), "{start:?}");
            assert_eq!(store.find(&id).await.expect("find"), None, "{start:?}");
        }
        let first = if start == ReplicaStart::FromFirst {
            0
        } else {
            4
        };
        let applied = replicate_record(&*store, record(first))
            .await
            .expect("applied");
        assert_eq!(applied, Some(record(first)), "{start:?}");
        for duplicate in [first, first.saturating_sub(1)] {
            let again = replicate_record(&*store, record(duplicate)).await;
            assert_eq!(
                again.expect("a duplicate is acknowledged"),
                None,
                "{start:?}"
            );
        }
        let gap = replicate_record(&*store, record(first + 2)).await;
        assert!(gap.expect_err("a gap").is_retryable(), "{start:?}");
        let next = replicate_record(&*store, record(first + 1)).await;
        assert_eq!(next.expect("in turn"), Some(record(first + 1)), "{start:?}");
        assert_eq!(
            store.get(&id).await.expect("get"),
            record(first + 1),
            "{start:?}"
        );
    }
}

pub async fn a_shuffled_log_of_whole_records_converges_to_the_in_order_state<F: ReplicaFactory>(
    factory: &F,
) {
    // Written by two members at once.
    converges(
        factory,
        0x2545_f491_4f6c_dd1d,
        async |store, _, _, record| {
            let both = join_all([
                replicate_record(&**store, record.clone()),
                replicate_record(&**store, record),
            ])
            .await;
            let applied = both.iter().filter(|r| matches!(r, Ok(Some(_)))).count();
            assert!(applied <= 1, "one member applies an event: {both:?}");
            if both.iter().any(|r| matches!(r, Err(e) if e.is_retryable())) {
                true
            } else if let Some(Err(e)) = both.iter().find(|r| r.is_err()) {
                panic!("{e}");
            } else {
                false
            }
        },
    )
    .await;
}

pub async fn a_from_first_replica_waits_for_version_0<F: ReplicaFactory>(factory: &F) {
    let store = factory.store(ReplicaStart::FromFirst).await;
    assert_eq!(store.start(), ReplicaStart::FromFirst);
    let id = factory.id();
    let outcome = replicate(&*store, &id, 5, |_| Ok(factory.record(&id, 5, 5))).await;
    let waited: HandlerError = outcome.expect_err("a gap");
    assert!(waited.is_retryable(), "{waited}");
    assert_eq!(store.find(&id).await.expect("find"), None);
}

pub async fn a_first_seen_replica_starts_mid_stream<F: ReplicaFactory>(factory: &F) {
    let store = factory.store(ReplicaStart::FirstSeen).await;
    assert_eq!(store.start(), ReplicaStart::FirstSeen);
    let id = factory.id();
    let lookup = store.find_by_event(&id, 5).await.expect("find_by_event");
    assert_eq!(lookup.disposition, EventDisposition::Apply);
    let applied = replicate(&*store, &id, 5, |held| {
        assert_eq!(held, None);
        Ok(factory.record(&id, 5, 5))
    })
    .await
    .expect("applied");
    assert_eq!(applied, Some(factory.record(&id, 5, 5)));
    // From there on the rule holds as usual.
    assert_eq!(
        disposition_of(&*store, &id, 4).await,
        EventDisposition::Duplicate
    );
    assert_eq!(
        disposition_of(&*store, &id, 5).await,
        EventDisposition::Duplicate
    );
    assert_eq!(
        disposition_of(&*store, &id, 6).await,
        EventDisposition::Apply
    );
    assert_eq!(disposition_of(&*store, &id, 8).await, EventDisposition::Gap);
    assert!(is_conflict(&store.apply(&factory.record(&id, 7, 7)).await));
    assert!(is_conflict(&store.apply(&factory.record(&id, 3, 3)).await));
    store
        .apply(&factory.record(&id, 6, 6))
        .await
        .expect("apply 6");
    assert_eq!(
        store.get(&id).await.expect("get"),
        factory.record(&id, 6, 6)
    );
}

pub async fn records_are_kept_apart_by_id<F: ReplicaFactory>(factory: &F) {
    let store = factory.store(ReplicaStart::FromFirst).await;
    let (a, b) = (factory.id(), factory.id());
    store.apply(&factory.record(&a, 0, 1)).await.expect("a");
    store.apply(&factory.record(&b, 0, 2)).await.expect("b");
    store.apply(&factory.record(&a, 1, 3)).await.expect("a 1");
    assert_eq!(store.get(&a).await.expect("a"), factory.record(&a, 1, 3));
    assert_eq!(store.get(&b).await.expect("b"), factory.record(&b, 0, 2));
}

pub async fn a_missing_record_is_not_found<F: ReplicaFactory>(factory: &F) {
    let store = factory.store(ReplicaStart::FromFirst).await;
    let id = factory.id();
    assert_eq!(store.find(&id).await.expect("find"), None);
    let missing = store.get(&id).await.expect_err("not found");
    assert!(missing.is_not_found(), "{missing}");
    assert!(missing.to_string().contains(&id.to_string()), "{missing}");
}

/// Expands one test per replica case, each calling the case with `factory`.
#[macro_export]
macro_rules! replica_conformance_tests {
    (#[$attr:meta] factory = $factory:expr $(,)?) => {
        $crate::__conformance_cases!(
            #[$attr] [$factory] replica:
            find_by_event_answers_apply_duplicate_and_gap
            applying_an_event_stores_the_record_at_the_events_version
            applying_out_of_turn_is_a_version_conflict_and_writes_nothing
            of_concurrent_appliers_of_one_event_exactly_one_wins
            a_shuffled_event_log_with_duplicates_converges_to_the_in_order_state
            a_whole_record_written_first_has_the_outcomes_of_a_lookup_first
            a_shuffled_log_of_whole_records_converges_to_the_in_order_state
            a_from_first_replica_waits_for_version_0
            a_first_seen_replica_starts_mid_stream
            records_are_kept_apart_by_id
            a_missing_record_is_not_found
        );
    };
}
