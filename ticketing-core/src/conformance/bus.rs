//! The bus conformance suite: what every [`Bus`] backend must do.
//!
//! Each case is a plain async function taking a [`BusFactory`]; the factory hands out a fresh,
//! isolated bus per call (for NATS, a unique stream and subject prefix). Run them all with
//! [`bus_conformance_tests!`](crate::bus_conformance_tests):
//!
//! ```no_run
//! struct Factory;
//!
//! #[async_trait::async_trait]
//! impl ticketing_core::conformance::bus::BusFactory for Factory {
//!     async fn bus(&self) -> std::sync::Arc<dyn ticketing_core::Bus> {
//!         // Connect to the backend, with a prefix no other test uses.
//! #       unimplemented!()
//!     }
//!     fn capabilities(&self) -> ticketing_core::conformance::bus::BusCapabilities {
//!         Default::default()
//!     }
//! }
//!
//! ticketing_core::bus_conformance_tests!(#[tokio::test] factory = Factory);
//! # fn main() {}
//! ```
//!
//! Timing cases use short ack waits and delays and measure with `tokio::time`, so a backend
//! that runs on tokio time (the in-memory bus) can run the suite on a paused clock.

#![allow(missing_docs)]

use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::time::{Instant, timeout};

use super::eventually;
use crate::bus::{Bus, DeadLetter, Delivery, OutgoingMessage, SubscribeOptions, Subscription};
use crate::event::Event;
use crate::listener::{
    HandlerError, Listener, ListenerHandle, ListenerOptions, MessageContext, RetryBackoff,
    spawn_listener,
};
use crate::publisher::Publisher;

/// Hands out isolated buses for the suite.
#[async_trait]
pub trait BusFactory: Send + Sync {
    /// A fresh bus that shares no subjects, groups or dead letters with any other.
    async fn bus(&self) -> Arc<dyn Bus>;

    /// How this backend legitimately differs.
    fn capabilities(&self) -> BusCapabilities;
}

/// Where backends legitimately differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusCapabilities {
    /// How late a timed redelivery may arrive after its due time (a broker's timer
    /// granularity). It is never allowed to arrive early.
    pub timing_slack: Duration,
    /// The shortest ack wait the backend honours; timing cases use it.
    pub short_ack_wait: Duration,
    /// Whether [`Bus::subscribe_many`] makes one consumer of several subjects; without (a
    /// nats-server older than 2.10) it must refuse with [`BusError::Unsupported`](crate::BusError::Unsupported)
    /// naming the version it needs, and listeners of several events still work.
    pub several_subjects: bool,
    /// Whether [`Bus::subscribe_ordered`] gives per-key ordered groups (a NATS bus needs
    /// partitions on its stream, nats-server 2.10 or later); without, it must refuse with
    /// [`BusError::Unsupported`](crate::BusError::Unsupported) saying why.
    pub ordered: bool,
}

impl Default for BusCapabilities {
    fn default() -> Self {
        BusCapabilities {
            timing_slack: Duration::from_millis(50),
            short_ack_wait: Duration::from_secs(1),
            several_subjects: true,
            ordered: true,
        }
    }
}

/// The event the suite publishes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Numbered {
    pub n: u64,
}

impl Event for Numbered {
    const SUBJECT: &'static str = "conformance:numbered";
    fn message_id(&self) -> String {
        format!("{}:{}", Self::SUBJECT, self.n)
    }
}

const SUBJECT: &str = Numbered::SUBJECT;
const OTHER_SUBJECT: &str = "conformance:other";
const WAIT: Duration = Duration::from_secs(15);

fn numbered(n: u64) -> OutgoingMessage {
    OutgoingMessage::new(
        SUBJECT,
        serde_json::to_vec(&Numbered { n }).expect("encode"),
    )
}

fn number_of(delivery: &Delivery) -> u64 {
    serde_json::from_slice::<Numbered>(delivery.payload())
        .expect("conformance payload")
        .n
}

async fn publish_range(bus: &Arc<dyn Bus>, range: std::ops::Range<u64>) {
    for n in range {
        bus.publish(numbered(n)).await.expect("publish");
    }
}

fn options() -> SubscribeOptions {
    SubscribeOptions::default()
}

/// [`options`] with the bus's short ack wait.
fn short_ack_wait(caps: &BusCapabilities) -> SubscribeOptions {
    SubscribeOptions {
        ack_wait: caps.short_ack_wait,
        ..options()
    }
}

async fn subscribe(
    bus: &Arc<dyn Bus>,
    group: &str,
    options: SubscribeOptions,
) -> Box<dyn Subscription> {
    bus.subscribe(SUBJECT, group, options)
        .await
        .expect("subscribe")
}

async fn recv(sub: &mut Box<dyn Subscription>) -> Delivery {
    match timeout(WAIT, sub.next()).await {
        Ok(Some(Ok(delivery))) => delivery,
        Ok(Some(Err(error))) => panic!("subscription failed: {error}"),
        Ok(None) => panic!("subscription ended"),
        Err(_) => panic!("no delivery within {WAIT:?}"),
    }
}

async fn expect_nothing(sub: &mut Box<dyn Subscription>, within: Duration) {
    if let Ok(Some(delivery)) = timeout(within, sub.next()).await {
        let delivery = delivery.expect("subscription");
        panic!(
            "unexpected delivery of #{} (attempt {}) within {within:?}",
            number_of(&delivery),
            delivery.attempt()
        );
    }
}

async fn dead_letters_eventually(bus: &Arc<dyn Bus>, count: usize) -> Vec<DeadLetter> {
    eventually(WAIT, &format!("{count} dead letter(s)"), || async {
        let letters = bus.dead_letters().await.expect("dead letters");
        (letters.len() >= count).then_some(letters)
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// A listener whose behaviour per (n, attempt) each case chooses.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Behaviour {
    Accept,
    Retry,
    Wait,
    Permanent,
    Panic,
}

type BehaviourFn = dyn Fn(u64, u32) -> Behaviour + Send + Sync;

struct TestListener {
    group: &'static str,
    options: ListenerOptions,
    behaviour: Box<BehaviourFn>,
    work: Duration,
    calls: Arc<Mutex<Vec<(u64, u32)>>>,
    accepted: Arc<Mutex<Vec<u64>>>,
    running: Arc<AtomicUsize>,
    max_running: Arc<AtomicUsize>,
}

#[derive(Clone)]
struct Observed {
    calls: Arc<Mutex<Vec<(u64, u32)>>>,
    accepted: Arc<Mutex<Vec<u64>>>,
    max_running: Arc<AtomicUsize>,
}

impl Observed {
    fn calls(&self) -> Vec<(u64, u32)> {
        self.calls.lock().expect("lock").clone()
    }
    fn accepted(&self) -> Vec<u64> {
        self.accepted.lock().expect("lock").clone()
    }
    async fn accepted_eventually(&self, count: usize) -> Vec<u64> {
        eventually(WAIT, &format!("{count} accepted message(s)"), || async {
            let accepted = self.accepted();
            (accepted.len() >= count).then_some(accepted)
        })
        .await
    }
}

impl TestListener {
    fn new(
        group: &'static str,
        behaviour: impl Fn(u64, u32) -> Behaviour + Send + Sync + 'static,
    ) -> Self {
        TestListener {
            group,
            options: ListenerOptions {
                backoff: RetryBackoff {
                    initial: Duration::from_millis(50),
                    multiplier: 2.0,
                    max: Duration::from_millis(400),
                },
                ..ListenerOptions::default()
            },
            behaviour: Box::new(behaviour),
            work: Duration::ZERO,
            calls: Arc::default(),
            accepted: Arc::default(),
            running: Arc::default(),
            max_running: Arc::default(),
        }
    }

    fn observed(&self) -> Observed {
        Observed {
            calls: self.calls.clone(),
            accepted: self.accepted.clone(),
            max_running: self.max_running.clone(),
        }
    }

    async fn spawn(self, bus: &Arc<dyn Bus>) -> (ListenerHandle, Observed) {
        let observed = self.observed();
        let handle = spawn_listener(bus, self).await.expect("spawn listener");
        (handle, observed)
    }
}

#[async_trait]
impl Listener for TestListener {
    type Event = Numbered;

    fn queue_group(&self) -> &str {
        self.group
    }

    fn options(&self) -> ListenerOptions {
        self.options
    }

    async fn on_message(
        &self,
        event: Numbered,
        ctx: &MessageContext<'_>,
    ) -> Result<(), HandlerError> {
        let running = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_running.fetch_max(running, Ordering::SeqCst);
        self.calls
            .lock()
            .expect("lock")
            .push((event.n, ctx.attempt()));
        if !self.work.is_zero() {
            tokio::time::sleep(self.work).await;
        }
        self.running.fetch_sub(1, Ordering::SeqCst);
        match (self.behaviour)(event.n, ctx.attempt()) {
            Behaviour::Accept => {
                self.accepted.lock().expect("lock").push(event.n);
                Ok(())
            }
            Behaviour::Retry => Err(HandlerError::retry(format!("#{} not yet", event.n))),
            Behaviour::Wait => Err(HandlerError::gap(format!("record #{}", event.n), None, 1)),
            Behaviour::Permanent => Err(HandlerError::permanent(format!("#{} is bad", event.n))),
            Behaviour::Panic => panic!("handler exploded on #{}", event.n),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Publish and subscribe.

pub async fn published_messages_arrive_in_order_with_payload_and_headers_intact(
    factory: &dyn BusFactory,
) {
    let bus = factory.bus().await;
    let mut sub = subscribe(&bus, "g", options()).await;
    for n in 0..100u64 {
        let message = numbered(n)
            .with_header("n", n.to_string())
            .with_header("kind", "conformance");
        bus.publish(message).await.expect("publish");
    }
    let mut last_sequence = 0;
    for n in 0..100u64 {
        let delivery = recv(&mut sub).await;
        assert_eq!(delivery.subject(), SUBJECT);
        assert_eq!(number_of(&delivery), n, "out of order");
        assert_eq!(delivery.headers().get("n"), Some(&n.to_string()));
        assert_eq!(
            delivery.headers().get("kind").map(String::as_str),
            Some("conformance")
        );
        assert_eq!(delivery.attempt(), 1);
        assert_eq!(delivery.group(), "g");
        assert!(delivery.sequence() > last_sequence);
        last_sequence = delivery.sequence();
        delivery.ack().await.expect("ack");
    }
}

pub async fn publish_confirms_with_increasing_sequences(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    let mut last = 0;
    for n in 0..20 {
        let ack = bus.publish(numbered(n)).await.expect("publish");
        assert!(!ack.duplicate);
        assert!(
            ack.sequence > last,
            "sequence {} after {last}",
            ack.sequence
        );
        last = ack.sequence;
    }
}

pub async fn an_empty_payload_is_delivered_as_published(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    let mut sub = subscribe(&bus, "g", options()).await;
    bus.publish(OutgoingMessage::new(SUBJECT, Vec::new()))
        .await
        .expect("publish");
    let delivery = recv(&mut sub).await;
    assert!(delivery.payload().is_empty());
    assert!(delivery.headers().is_empty(), "{:?}", delivery.headers());
    delivery.ack().await.expect("ack");
}

pub async fn concurrent_publishers_and_subscribers_lose_nothing(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    let mut members = Vec::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    for _ in 0..3 {
        let mut sub = subscribe(&bus, "g", options()).await;
        let seen = seen.clone();
        members.push(tokio::spawn(async move {
            while let Ok(Some(Ok(delivery))) = timeout(Duration::from_secs(3), sub.next()).await {
                seen.lock().expect("lock").push(number_of(&delivery));
                delivery.ack().await.expect("ack");
            }
            sub.close().await.expect("close");
        }));
    }
    let publishers: Vec<_> = (0..4u64)
        .map(|p| {
            let bus = bus.clone();
            tokio::spawn(async move { publish_range(&bus, p * 250..(p + 1) * 250).await })
        })
        .collect();
    for p in publishers {
        p.await.expect("publisher");
    }
    for m in members {
        m.await.expect("member");
    }
    let mut seen = seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 1000, "every message once");
    seen.sort_unstable();
    assert_eq!(seen, (0..1000).collect::<Vec<_>>());
}

pub async fn subscribers_receive_only_their_subject(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    let mut numbered_sub = subscribe(&bus, "g", options()).await;
    let mut other_sub = bus
        .subscribe(OTHER_SUBJECT, "g", options())
        .await
        .expect("subscribe");
    for n in 0..5 {
        bus.publish(numbered(n)).await.expect("publish");
        bus.publish(OutgoingMessage::new(OTHER_SUBJECT, format!("other {n}")))
            .await
            .expect("publish");
    }
    for n in 0..5 {
        let d = recv(&mut numbered_sub).await;
        assert_eq!((d.subject(), number_of(&d)), (SUBJECT, n));
        d.ack().await.expect("ack");
        let d = recv(&mut other_sub).await;
        assert_eq!(d.subject(), OTHER_SUBJECT);
        assert_eq!(&d.payload()[..], format!("other {n}").as_bytes());
        d.ack().await.expect("ack");
    }
    expect_nothing(&mut numbered_sub, Duration::from_millis(200)).await;
}

pub async fn every_queue_group_receives_every_message(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    let mut subs = Vec::new();
    for group in ["a", "b", "c"] {
        subs.push(subscribe(&bus, group, options()).await);
    }
    publish_range(&bus, 0..50).await;
    for sub in &mut subs {
        for n in 0..50 {
            let d = recv(sub).await;
            assert_eq!(number_of(&d), n);
            d.ack().await.expect("ack");
        }
    }
}

pub async fn members_of_one_group_receive_disjoint_messages(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let mut sub = subscribe(&bus, "g", options()).await;
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            while let Ok(Some(Ok(d))) = timeout(Duration::from_secs(2), sub.next()).await {
                mine.push(number_of(&d));
                tokio::task::yield_now().await;
                d.ack().await.expect("ack");
            }
            sub.close().await.expect("close");
            mine
        }));
    }
    publish_range(&bus, 0..100).await;
    let mut all = Vec::new();
    let mut sets = Vec::new();
    for t in tasks {
        let mine = t.await.expect("member");
        all.extend(mine.iter().copied());
        sets.push(mine.into_iter().collect::<HashSet<_>>());
    }
    assert!(
        sets[0].is_disjoint(&sets[1]),
        "a message went to two members"
    );
    all.sort_unstable();
    assert_eq!(all, (0..100).collect::<Vec<_>>());
}

pub async fn a_new_group_replays_the_retained_history(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    publish_range(&bus, 0..20).await;
    let mut sub = subscribe(&bus, "late", options()).await;
    for n in 0..20 {
        let d = recv(&mut sub).await;
        assert_eq!(number_of(&d), n);
        d.ack().await.expect("ack");
    }
}

pub async fn a_restarted_member_resumes_without_loss_or_replay_of_acked_messages(
    factory: &dyn BusFactory,
) {
    let bus = factory.bus().await;
    publish_range(&bus, 0..20).await;
    let mut sub = subscribe(&bus, "g", options()).await;
    for n in 0..10 {
        let d = recv(&mut sub).await;
        assert_eq!(number_of(&d), n);
        d.ack().await.expect("ack");
    }
    sub.close().await.expect("close");
    publish_range(&bus, 20..30).await;
    let mut restarted = subscribe(&bus, "g", options()).await;
    let mut resumed = Vec::new();
    for _ in 10..30 {
        let d = recv(&mut restarted).await;
        resumed.push(number_of(&d));
        d.ack().await.expect("ack");
    }
    // A pulling backend may have fetched some of 10..20 ahead and handed them back on close,
    // so they can come back in another order; none of 0..10 comes back, none is lost.
    resumed.sort_unstable();
    assert_eq!(
        resumed,
        (10..30).collect::<Vec<_>>(),
        "lost or replayed messages"
    );
    expect_nothing(&mut restarted, Duration::from_millis(200)).await;
}

pub async fn one_group_name_on_two_subjects_is_two_independent_groups(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    let mut a = subscribe(&bus, "shared", options()).await;
    let mut b = bus
        .subscribe(OTHER_SUBJECT, "shared", options())
        .await
        .expect("subscribe");
    bus.publish(numbered(1)).await.expect("publish");
    bus.publish(OutgoingMessage::new(OTHER_SUBJECT, "x"))
        .await
        .expect("publish");
    let d = recv(&mut a).await;
    assert_eq!(d.subject(), SUBJECT);
    d.ack().await.expect("ack");
    let d = recv(&mut b).await;
    assert_eq!(d.subject(), OTHER_SUBJECT);
    d.ack().await.expect("ack");
}

pub async fn invalid_subjects_and_groups_are_rejected(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    assert!(bus.publish(OutgoingMessage::new("", "x")).await.is_err());
    assert!(bus.publish(OutgoingMessage::new("a b", "x")).await.is_err());
    assert!(bus.publish(OutgoingMessage::new("a.*", "x")).await.is_err());
    assert!(bus.subscribe("a b", "g", options()).await.is_err());
    assert!(
        bus.subscribe(SUBJECT, "bad.group", options())
            .await
            .is_err()
    );
    assert!(bus.subscribe(SUBJECT, "", options()).await.is_err());
}

// ---------------------------------------------------------------------------------------------
// Settlement.

pub async fn acked_message_is_never_redelivered(factory: &dyn BusFactory) {
    let caps = factory.capabilities();
    let bus = factory.bus().await;
    let opts = short_ack_wait(&caps);
    let mut sub = subscribe(&bus, "g", opts).await;
    bus.publish(numbered(1)).await.expect("publish");
    recv(&mut sub).await.ack().await.expect("ack");
    expect_nothing(&mut sub, caps.short_ack_wait * 2).await;
}

pub async fn nacked_message_is_redelivered_with_the_attempt_incremented(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    let mut sub = subscribe(&bus, "g", options()).await;
    bus.publish(numbered(7)).await.expect("publish");
    let first = recv(&mut sub).await;
    assert_eq!(first.attempt(), 1);
    first.nak(None).await.expect("nak");
    let second = recv(&mut sub).await;
    assert_eq!((number_of(&second), second.attempt()), (7, 2));
    second.nak(None).await.expect("nak");
    let third = recv(&mut sub).await;
    assert_eq!((number_of(&third), third.attempt()), (7, 3));
    third.ack().await.expect("ack");
}

pub async fn nacked_message_is_redelivered_no_sooner_than_its_delay(factory: &dyn BusFactory) {
    let caps = factory.capabilities();
    let bus = factory.bus().await;
    let mut sub = subscribe(&bus, "g", options()).await;
    bus.publish(numbered(1)).await.expect("publish");
    let delay = Duration::from_millis(700);
    let started = Instant::now();
    recv(&mut sub).await.nak(Some(delay)).await.expect("nak");
    let again = recv(&mut sub).await;
    let elapsed = started.elapsed();
    assert!(
        elapsed >= delay,
        "redelivered after {elapsed:?}, before the {delay:?} delay"
    );
    assert!(
        elapsed <= delay + caps.timing_slack + Duration::from_secs(1),
        "redelivered only after {elapsed:?}"
    );
    assert_eq!(again.attempt(), 2);
    again.ack().await.expect("ack");
}

pub async fn nak_delay_does_not_hold_back_other_messages(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    let mut sub = subscribe(&bus, "g", options()).await;
    publish_range(&bus, 0..3).await;
    let first = recv(&mut sub).await;
    assert_eq!(number_of(&first), 0);
    first.nak(Some(Duration::from_secs(2))).await.expect("nak");
    for n in 1..3 {
        let d = recv(&mut sub).await;
        assert_eq!(number_of(&d), n);
        d.ack().await.expect("ack");
    }
    let late = recv(&mut sub).await;
    assert_eq!((number_of(&late), late.attempt()), (0, 2));
    late.ack().await.expect("ack");
}

pub async fn unacked_message_is_redelivered_after_ack_wait_with_the_attempt_incremented(
    factory: &dyn BusFactory,
) {
    let caps = factory.capabilities();
    let bus = factory.bus().await;
    let opts = short_ack_wait(&caps);
    let mut sub = subscribe(&bus, "g", opts).await;
    bus.publish(numbered(3)).await.expect("publish");
    let started = Instant::now();
    let first = recv(&mut sub).await;
    assert_eq!(first.attempt(), 1);
    // Never settled: as if the member crashed while handling it.
    drop(first);
    let second = recv(&mut sub).await;
    let elapsed = started.elapsed();
    assert_eq!((number_of(&second), second.attempt()), (3, 2));
    assert!(
        elapsed + caps.timing_slack >= caps.short_ack_wait,
        "redelivered after {elapsed:?}"
    );
    second.ack().await.expect("ack");
    expect_nothing(&mut sub, caps.short_ack_wait + caps.timing_slack).await;
}

pub async fn a_message_unacked_by_a_closed_member_goes_to_another_member(factory: &dyn BusFactory) {
    let caps = factory.capabilities();
    let bus = factory.bus().await;
    let opts = short_ack_wait(&caps);
    let mut crashed = subscribe(&bus, "g", opts).await;
    bus.publish(numbered(9)).await.expect("publish");
    let lost = recv(&mut crashed).await;
    drop(lost);
    crashed.close().await.expect("close");
    let mut survivor = subscribe(&bus, "g", opts).await;
    let d = recv(&mut survivor).await;
    assert_eq!((number_of(&d), d.attempt()), (9, 2));
    d.ack().await.expect("ack");
}

pub async fn progress_prevents_redelivery(factory: &dyn BusFactory) {
    let caps = factory.capabilities();
    let bus = factory.bus().await;
    let ack_wait = caps.short_ack_wait;
    let opts = SubscribeOptions {
        ack_wait,
        ..options()
    };
    let mut working = subscribe(&bus, "g", opts).await;
    let mut other = subscribe(&bus, "g", opts).await;
    bus.publish(numbered(1)).await.expect("publish");
    let d = recv(&mut working).await;
    let watcher = tokio::spawn(async move {
        let got = timeout(ack_wait * 3, other.next()).await;
        (
            got.ok().flatten().map(|d| d.map(|d| d.attempt()).ok()),
            other,
        )
    });
    for _ in 0..6 {
        tokio::time::sleep(ack_wait / 2).await;
        d.progress().await.expect("progress");
    }
    d.ack().await.expect("ack");
    let (redelivered, _other) = watcher.await.expect("watcher");
    assert_eq!(
        redelivered, None,
        "redelivered although progress was reported"
    );
}

pub async fn terminated_message_is_dead_lettered_once_with_its_reason(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    let mut sub = subscribe(&bus, "g", options()).await;
    bus.publish(numbered(5).with_header("trace", "abc"))
        .await
        .expect("publish");
    let d = recv(&mut sub).await;
    d.term("cannot handle #5").await.expect("term");
    let letters = dead_letters_eventually(&bus, 1).await;
    assert_eq!(letters.len(), 1);
    let letter = &letters[0];
    assert!(
        letter.reason.contains("cannot handle #5"),
        "reason: {}",
        letter.reason
    );
    assert_eq!(letter.message.subject, SUBJECT);
    assert_eq!(letter.group, "g");
    assert_eq!(letter.attempts, 1);
    assert_eq!(
        serde_json::from_slice::<Numbered>(&letter.message.payload)
            .expect("payload")
            .n,
        5
    );
    assert_eq!(
        letter.message.headers.get("trace").map(String::as_str),
        Some("abc")
    );
    expect_nothing(&mut sub, Duration::from_millis(300)).await;
    assert_eq!(bus.dead_letters().await.expect("dead letters").len(), 1);
}

pub async fn message_past_max_deliver_is_dead_lettered_once(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    let opts = SubscribeOptions {
        max_deliver: 3,
        ..options()
    };
    let mut sub = subscribe(&bus, "g", opts).await;
    bus.publish(numbered(4)).await.expect("publish");
    for attempt in 1..=3 {
        let d = recv(&mut sub).await;
        assert_eq!(d.attempt(), attempt);
        d.nak(None).await.expect("nak");
    }
    let letters = dead_letters_eventually(&bus, 1).await;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].attempts, 3);
    assert_eq!(letters[0].group, "g");
    assert!(!letters[0].reason.is_empty());
    expect_nothing(&mut sub, Duration::from_millis(500)).await;
    assert_eq!(bus.dead_letters().await.expect("dead letters").len(), 1);
}

pub async fn unacked_message_past_max_deliver_is_dead_lettered(factory: &dyn BusFactory) {
    let caps = factory.capabilities();
    let bus = factory.bus().await;
    let opts = SubscribeOptions {
        max_deliver: 2,
        ack_wait: caps.short_ack_wait,
        ..options()
    };
    let mut sub = subscribe(&bus, "g", opts).await;
    bus.publish(numbered(8)).await.expect("publish");
    drop(recv(&mut sub).await);
    let second = recv(&mut sub).await;
    assert_eq!(second.attempt(), 2);
    drop(second);
    // A waiting member lets the bus notice the second ack wait has run out.
    expect_nothing(&mut sub, caps.short_ack_wait * 2 + caps.timing_slack).await;
    let letters = dead_letters_eventually(&bus, 1).await;
    assert_eq!((letters.len(), letters[0].attempts), (1, 2));
}

pub async fn max_ack_pending_pauses_delivery_until_an_ack(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    let opts = SubscribeOptions {
        max_ack_pending: 2,
        ..options()
    };
    let mut sub = subscribe(&bus, "g", opts).await;
    publish_range(&bus, 0..5).await;
    let first = recv(&mut sub).await;
    let second = recv(&mut sub).await;
    assert_eq!((number_of(&first), number_of(&second)), (0, 1));
    expect_nothing(&mut sub, Duration::from_millis(300)).await;
    first.ack().await.expect("ack");
    let third = recv(&mut sub).await;
    assert_eq!(number_of(&third), 2);
    expect_nothing(&mut sub, Duration::from_millis(300)).await;
    second.ack().await.expect("ack");
    third.ack().await.expect("ack");
    for n in 3..5 {
        let d = recv(&mut sub).await;
        assert_eq!(number_of(&d), n);
        d.ack().await.expect("ack");
    }
}

pub async fn one_in_flight_gives_ordered_delivery_even_with_retries(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    let opts = SubscribeOptions {
        max_ack_pending: 1,
        ..options()
    };
    let mut sub = subscribe(&bus, "g", opts).await;
    publish_range(&bus, 0..20).await;
    let mut acked = Vec::new();
    while acked.len() < 20 {
        let d = recv(&mut sub).await;
        let n = number_of(&d);
        if n % 5 == 0 && d.attempt() == 1 {
            d.nak(None).await.expect("nak");
        } else {
            acked.push(n);
            d.ack().await.expect("ack");
        }
    }
    assert_eq!(acked, (0..20).collect::<Vec<_>>());
}

// ---------------------------------------------------------------------------------------------
// De-duplication.

pub async fn duplicate_publish_within_the_window_is_reported_and_stored_once(
    factory: &dyn BusFactory,
) {
    let bus = factory.bus().await;
    let mut sub = subscribe(&bus, "g", options()).await;
    let first = bus
        .publish(numbered(1).with_message_id("m-1"))
        .await
        .expect("publish");
    let second = bus
        .publish(numbered(1).with_message_id("m-1"))
        .await
        .expect("publish");
    assert!(!first.duplicate);
    assert!(second.duplicate);
    assert_eq!(second.sequence, first.sequence);
    let d = recv(&mut sub).await;
    assert_eq!(number_of(&d), 1);
    d.ack().await.expect("ack");
    expect_nothing(&mut sub, Duration::from_millis(300)).await;
}

pub async fn distinct_message_ids_are_all_stored(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    let mut sub = subscribe(&bus, "g", options()).await;
    for n in 0..10 {
        let ack = bus
            .publish(numbered(n).with_message_id(format!("m-{n}")))
            .await
            .expect("publish");
        assert!(!ack.duplicate);
    }
    for n in 0..10 {
        let d = recv(&mut sub).await;
        assert_eq!(number_of(&d), n);
        d.ack().await.expect("ack");
    }
}

pub async fn messages_without_an_id_are_never_deduplicated(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    let mut sub = subscribe(&bus, "g", options()).await;
    for _ in 0..3 {
        assert!(!bus.publish(numbered(1)).await.expect("publish").duplicate);
    }
    for _ in 0..3 {
        recv(&mut sub).await.ack().await.expect("ack");
    }
}

pub async fn publisher_sets_the_message_id_and_a_republished_event_is_a_duplicate(
    factory: &dyn BusFactory,
) {
    let bus = factory.bus().await;
    let publisher = Publisher::<Numbered>::new(bus.clone());
    let (handle, seen) = TestListener::new("g", |_, _| Behaviour::Accept)
        .spawn(&bus)
        .await;
    assert!(
        !publisher
            .publish(&Numbered { n: 1 })
            .await
            .expect("publish")
            .duplicate
    );
    assert!(
        publisher
            .publish(&Numbered { n: 1 })
            .await
            .expect("publish")
            .duplicate
    );
    assert!(
        !publisher
            .publish(&Numbered { n: 2 })
            .await
            .expect("publish")
            .duplicate
    );
    assert_eq!(seen.accepted_eventually(2).await, vec![1, 2]);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(seen.accepted(), vec![1, 2]);
    handle.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Dead letters.

pub async fn dead_letter_is_redriven_to_its_own_group_only(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    let mut failing = subscribe(&bus, "failing", options()).await;
    let mut healthy = subscribe(&bus, "healthy", options()).await;
    bus.publish(numbered(1)).await.expect("publish");
    recv(&mut healthy).await.ack().await.expect("ack");
    recv(&mut failing)
        .await
        .term("not now")
        .await
        .expect("term");
    let letters = dead_letters_eventually(&bus, 1).await;
    bus.redrive(letters[0].id).await.expect("redrive");
    let again = recv(&mut failing).await;
    assert_eq!((number_of(&again), again.attempt()), (1, 1));
    again.ack().await.expect("ack");
    expect_nothing(&mut healthy, Duration::from_millis(300)).await;
    assert!(bus.dead_letters().await.expect("dead letters").is_empty());
}

pub async fn redriving_an_unknown_dead_letter_is_an_error(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    assert!(bus.redrive(987_654).await.is_err());
}

pub async fn dead_letters_are_kept_per_group_and_message(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    let mut a = subscribe(&bus, "a", options()).await;
    let mut b = subscribe(&bus, "b", options()).await;
    publish_range(&bus, 0..2).await;
    for sub in [&mut a, &mut b] {
        for _ in 0..2 {
            recv(sub).await.term("no").await.expect("term");
        }
    }
    let letters = dead_letters_eventually(&bus, 4).await;
    let keys: BTreeSet<(String, u64)> = letters
        .iter()
        .map(|l| {
            let n = serde_json::from_slice::<Numbered>(&l.message.payload)
                .expect("payload")
                .n;
            (l.group.clone(), n)
        })
        .collect();
    assert_eq!(keys.len(), 4);
    let ids: HashSet<u64> = letters.iter().map(|l| l.id).collect();
    assert_eq!(ids.len(), 4, "dead letter ids are unique");
}

// ---------------------------------------------------------------------------------------------
// The listener runtime over this bus.

pub async fn listener_acks_what_its_handler_accepts(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    let (handle, seen) = TestListener::new("g", |_, _| Behaviour::Accept)
        .spawn(&bus)
        .await;
    publish_range(&bus, 0..20).await;
    assert_eq!(
        seen.accepted_eventually(20).await,
        (0..20).collect::<Vec<_>>()
    );
    handle.stop().await;
    // Nothing left unacked: a new member of the group gets nothing.
    let mut sub = subscribe(&bus, "g", options()).await;
    expect_nothing(&mut sub, Duration::from_millis(300)).await;
    assert!(bus.dead_letters().await.expect("dead letters").is_empty());
}

pub async fn listener_retries_a_retryable_failure_with_backoff_then_succeeds(
    factory: &dyn BusFactory,
) {
    let bus = factory.bus().await;
    let listener = TestListener::new("g", |_, attempt| {
        if attempt < 3 {
            Behaviour::Retry
        } else {
            Behaviour::Accept
        }
    });
    let backoff = listener.options.backoff;
    let started = Instant::now();
    let (handle, seen) = listener.spawn(&bus).await;
    bus.publish(numbered(1)).await.expect("publish");
    seen.accepted_eventually(1).await;
    let elapsed = started.elapsed();
    assert_eq!(seen.calls(), vec![(1, 1), (1, 2), (1, 3)]);
    assert!(
        elapsed >= backoff.delay(1) + backoff.delay(2),
        "retried too soon: {elapsed:?}"
    );
    assert!(bus.dead_letters().await.expect("dead letters").is_empty());
    handle.stop().await;
}

/// Events 0 to 2 to a listener that answers `bad` with `behaviour` and accepts the others;
/// returns once the two others are accepted and one message is dead-lettered.
async fn one_bad_of_three(
    bus: &Arc<dyn Bus>,
    bad: u64,
    behaviour: Behaviour,
) -> (ListenerHandle, Observed, Vec<DeadLetter>) {
    let (handle, seen) = TestListener::new("g", move |n, _| {
        if n == bad {
            behaviour
        } else {
            Behaviour::Accept
        }
    })
    .spawn(bus)
    .await;
    publish_range(bus, 0..3).await;
    seen.accepted_eventually(2).await;
    let letters = dead_letters_eventually(bus, 1).await;
    (handle, seen, letters)
}

pub async fn listener_dead_letters_a_permanent_failure_at_once(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    let (handle, seen, letters) = one_bad_of_three(&bus, 1, Behaviour::Permanent).await;
    assert!(
        letters[0].reason.contains("#1 is bad"),
        "reason: {}",
        letters[0].reason
    );
    assert_eq!(letters[0].attempts, 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        seen.calls().iter().filter(|(n, _)| *n == 1).count(),
        1,
        "retried a permanent failure"
    );
    handle.stop().await;
}

pub async fn listener_dead_letters_after_its_retry_budget(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    let mut listener = TestListener::new("g", |_, _| Behaviour::Retry);
    listener.options.max_deliver = 3;
    let (handle, seen) = listener.spawn(&bus).await;
    bus.publish(numbered(1)).await.expect("publish");
    let letters = dead_letters_eventually(&bus, 1).await;
    assert!(
        letters[0].reason.contains("gave up after 3 attempts"),
        "reason: {}",
        letters[0].reason
    );
    assert!(letters[0].reason.contains("#1 not yet"));
    assert_eq!(letters[0].attempts, 3);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(seen.calls(), vec![(1, 1), (1, 2), (1, 3)]);
    handle.stop().await;
}

pub async fn deliveries_carry_their_publish_time(factory: &dyn BusFactory) {
    let caps = factory.capabilities();
    let bus = factory.bus().await;
    let mut sub = subscribe(&bus, "g", options()).await;
    bus.publish(numbered(1)).await.expect("publish");
    let pause = Duration::from_millis(300);
    tokio::time::sleep(pause).await;
    let delivery = recv(&mut sub).await;
    assert!(delivery.published().is_some(), "no publish time");
    let age = delivery.age().expect("an age");
    // The server stamps the time; allow for its clock granularity.
    assert!(
        age + Duration::from_millis(50) >= pause,
        "age {age:?} < {pause:?}"
    );
    assert!(
        age <= pause + caps.timing_slack + Duration::from_secs(1),
        "age {age:?}"
    );
    delivery.ack().await.expect("ack");
}

pub async fn listener_waits_out_a_gap_without_using_its_retry_budget(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    // Waits six times (a version gap), then a transient failure twice, then succeeds: the
    // retry budget of 3 counts only the failures.
    let mut listener = TestListener::new("g", |_, attempt| match attempt {
        1..=6 => Behaviour::Wait,
        7 | 8 => Behaviour::Retry,
        _ => Behaviour::Accept,
    });
    listener.options.max_deliver = 3;
    let (handle, seen) = listener.spawn(&bus).await;
    bus.publish(numbered(1)).await.expect("publish");
    assert_eq!(seen.accepted_eventually(1).await, vec![1]);
    assert_eq!(seen.calls().len(), 9);
    assert!(bus.dead_letters().await.expect("dead letters").is_empty());
    handle.stop().await;
}

pub async fn waits_answered_by_a_member_that_went_away_do_not_use_the_retry_budget(
    factory: &dyn BusFactory,
) {
    let bus = factory.bus().await;
    // One member answers "wait" (a version gap) six times and goes away (a restart, a scale
    // down); the member that takes over fails twice, then succeeds. Its budget of 3 counts
    // its own failures, not the broker's deliveries.
    let mut first = TestListener::new("g", |_, _| Behaviour::Wait);
    first.options.max_deliver = 3;
    let (handle, seen) = first.spawn(&bus).await;
    bus.publish(numbered(1)).await.expect("publish");
    eventually(WAIT, "six waits", || async {
        (seen.calls().len() >= 6).then_some(())
    })
    .await;
    handle.stop().await;
    let failures = Arc::new(AtomicUsize::new(0));
    let counted = failures.clone();
    let mut second = TestListener::new("g", move |_, _| {
        if counted.fetch_add(1, Ordering::SeqCst) < 2 {
            Behaviour::Retry
        } else {
            Behaviour::Accept
        }
    });
    second.options.max_deliver = 3;
    let (handle, seen) = second.spawn(&bus).await;
    assert_eq!(seen.accepted_eventually(1).await, vec![1]);
    let calls = seen.calls();
    assert_eq!(calls.len(), 3, "{calls:?}");
    assert!(
        calls[0].1 > 6,
        "the broker counted the first member's deliveries: {calls:?}"
    );
    assert!(bus.dead_letters().await.expect("dead letters").is_empty());
    handle.stop().await;
}

pub async fn listener_dead_letters_a_wait_past_its_gap_horizon(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    let mut listener = TestListener::new("g", |_, _| Behaviour::Wait);
    listener.options.gap_horizon = Duration::from_millis(600);
    listener.options.max_deliver = 1;
    let (handle, seen) = listener.spawn(&bus).await;
    bus.publish(numbered(1)).await.expect("publish");
    let letters = dead_letters_eventually(&bus, 1).await;
    assert!(
        letters[0].reason.contains("past the gap horizon")
            && letters[0].reason.contains("version gap on record #1"),
        "reason: {}",
        letters[0].reason
    );
    assert!(
        seen.calls().len() >= 2,
        "a wait is retried whatever max_deliver says: {:?}",
        seen.calls()
    );
    handle.stop().await;
}

pub async fn undecodable_payload_is_dead_lettered_not_retried(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    let (handle, seen) = TestListener::new("g", |_, _| Behaviour::Accept)
        .spawn(&bus)
        .await;
    bus.publish(OutgoingMessage::new(SUBJECT, "{not json"))
        .await
        .expect("publish");
    bus.publish(OutgoingMessage::new(SUBJECT, r#"{"n":"wrong type"}"#))
        .await
        .expect("publish");
    bus.publish(numbered(2)).await.expect("publish");
    assert_eq!(seen.accepted_eventually(1).await, vec![2]);
    let letters = dead_letters_eventually(&bus, 2).await;
    assert!(
        letters
            .iter()
            .all(|l| l.reason.contains("undecodable payload"))
    );
    assert!(letters.iter().all(|l| l.attempts == 1));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        seen.calls(),
        vec![(2, 1)],
        "the handler saw an undecodable message"
    );
    handle.stop().await;
}

pub async fn a_panicking_handler_dead_letters_the_message_and_the_listener_goes_on(
    factory: &dyn BusFactory,
) {
    let bus = factory.bus().await;
    let (handle, seen, letters) = one_bad_of_three(&bus, 0, Behaviour::Panic).await;
    assert_eq!(seen.accepted(), vec![1, 2]);
    assert!(
        letters[0]
            .reason
            .contains("handler panicked: handler exploded on #0"),
        "reason: {}",
        letters[0].reason
    );
    assert!(!handle.is_finished());
    handle.stop().await;
}

pub async fn graceful_stop_loses_nothing(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    let mut first = TestListener::new("g", |_, _| Behaviour::Accept);
    first.options.concurrency = 4;
    first.work = Duration::from_millis(20);
    let (handle, first_seen) = first.spawn(&bus).await;
    publish_range(&bus, 0..100).await;
    first_seen.accepted_eventually(10).await;
    handle.stop().await;
    // Everything the first listener handled was acked before stop returned.
    let handled_before_stop: HashSet<u64> = first_seen.calls().iter().map(|(n, _)| *n).collect();
    assert_eq!(
        handled_before_stop.len(),
        first_seen.accepted().len(),
        "a call was left unsettled"
    );

    let (second, second_seen) = TestListener::new("g", |_, _| Behaviour::Accept)
        .spawn(&bus)
        .await;
    let rest = second_seen
        .accepted_eventually(100 - handled_before_stop.len())
        .await;
    for n in &rest {
        assert!(
            !handled_before_stop.contains(n),
            "#{n} was handled twice: acked-before-stop was redelivered"
        );
    }
    let mut all: Vec<u64> = handled_before_stop.into_iter().chain(rest).collect();
    all.sort_unstable();
    assert_eq!(all, (0..100).collect::<Vec<_>>());
    second.stop().await;
}

pub async fn listener_with_concurrency_handles_messages_in_parallel(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    publish_range(&bus, 0..8).await;
    let mut listener = TestListener::new("g", |_, _| Behaviour::Accept);
    listener.options.concurrency = 4;
    listener.work = Duration::from_millis(200);
    let (handle, seen) = listener.spawn(&bus).await;
    seen.accepted_eventually(8).await;
    assert_eq!(seen.max_running.load(Ordering::SeqCst), 4);
    handle.stop().await;
}

pub async fn a_listener_of_one_in_flight_handles_messages_in_publish_order(
    factory: &dyn BusFactory,
) {
    let bus = factory.bus().await;
    let (handle, seen) = TestListener::new("g", |n, attempt| {
        if n % 7 == 3 && attempt == 1 {
            Behaviour::Retry
        } else {
            Behaviour::Accept
        }
    })
    .spawn(&bus)
    .await;
    publish_range(&bus, 0..30).await;
    let accepted = seen.accepted_eventually(30).await;
    // Retried messages come back later, but messages that succeed first time keep their order.
    let first_time: Vec<u64> = accepted.iter().copied().filter(|n| n % 7 != 3).collect();
    assert_eq!(
        first_time,
        (0..30).filter(|n| n % 7 != 3).collect::<Vec<_>>()
    );
    handle.stop().await;
}

pub async fn two_groups_of_listeners_each_handle_every_event(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    let (a, seen_a) = TestListener::new("a", |_, _| Behaviour::Accept)
        .spawn(&bus)
        .await;
    let (b, seen_b) = TestListener::new("b", |_, _| Behaviour::Accept)
        .spawn(&bus)
        .await;
    publish_range(&bus, 0..25).await;
    assert_eq!(
        seen_a.accepted_eventually(25).await,
        (0..25).collect::<Vec<_>>()
    );
    assert_eq!(
        seen_b.accepted_eventually(25).await,
        (0..25).collect::<Vec<_>>()
    );
    a.stop().await;
    b.stop().await;
}

/// Expands one test per conformance case. The first argument is the attribute each test gets
/// (`#[tokio::test]`, or `#[tokio::test(start_paused = true)]` for a bus on tokio time); the
/// factory expression is evaluated once per test.
#[macro_export]
macro_rules! bus_conformance_tests {
    (#[$attr:meta] factory = $factory:expr $(,)?) => {
        $crate::__conformance_cases!(
            #[$attr] [$factory] bus:
            published_messages_arrive_in_order_with_payload_and_headers_intact
            publish_confirms_with_increasing_sequences
            an_empty_payload_is_delivered_as_published
            concurrent_publishers_and_subscribers_lose_nothing
            subscribers_receive_only_their_subject
            every_queue_group_receives_every_message
            members_of_one_group_receive_disjoint_messages
            a_new_group_replays_the_retained_history
            a_restarted_member_resumes_without_loss_or_replay_of_acked_messages
            one_group_name_on_two_subjects_is_two_independent_groups
            invalid_subjects_and_groups_are_rejected
            acked_message_is_never_redelivered
            nacked_message_is_redelivered_with_the_attempt_incremented
            nacked_message_is_redelivered_no_sooner_than_its_delay
            nak_delay_does_not_hold_back_other_messages
            unacked_message_is_redelivered_after_ack_wait_with_the_attempt_incremented
            a_message_unacked_by_a_closed_member_goes_to_another_member
            progress_prevents_redelivery
            terminated_message_is_dead_lettered_once_with_its_reason
            message_past_max_deliver_is_dead_lettered_once
            unacked_message_past_max_deliver_is_dead_lettered
            max_ack_pending_pauses_delivery_until_an_ack
            one_in_flight_gives_ordered_delivery_even_with_retries
            duplicate_publish_within_the_window_is_reported_and_stored_once
            distinct_message_ids_are_all_stored
            messages_without_an_id_are_never_deduplicated
            publisher_sets_the_message_id_and_a_republished_event_is_a_duplicate
            deliveries_carry_their_publish_time
            listener_waits_out_a_gap_without_using_its_retry_budget
            waits_answered_by_a_member_that_went_away_do_not_use_the_retry_budget
            listener_dead_letters_a_wait_past_its_gap_horizon
            dead_letter_is_redriven_to_its_own_group_only
            redriving_an_unknown_dead_letter_is_an_error
            dead_letters_are_kept_per_group_and_message
            listener_acks_what_its_handler_accepts
            listener_retries_a_retryable_failure_with_backoff_then_succeeds
            listener_dead_letters_a_permanent_failure_at_once
            listener_dead_letters_after_its_retry_budget
            undecodable_payload_is_dead_lettered_not_retried
            a_panicking_handler_dead_letters_the_message_and_the_listener_goes_on
            graceful_stop_loses_nothing
            listener_with_concurrency_handles_messages_in_parallel
            a_listener_of_one_in_flight_handles_messages_in_publish_order
            two_groups_of_listeners_each_handle_every_event
        );
        $crate::__conformance_cases!(
            #[$attr] [$factory] several:
            a_group_on_several_subjects_gets_every_message_of_each_once
            a_listener_of_an_enum_of_events_dispatches_by_subject_and_settles_each
            a_group_moving_to_one_consumer_of_several_subjects_resumes_where_it_was
        );
        $crate::__conformance_cases!(
            #[$attr] [$factory] ordered:
            an_ordered_group_keeps_each_keys_order_across_subjects_with_parallel_members
            a_nak_holds_its_key_until_the_redelivery_is_settled
            a_nak_holds_only_its_key_not_the_keys_that_share_its_partition
            a_dead_members_partition_goes_to_another_member_without_loss
            a_dead_lettered_event_lets_its_key_flow_and_is_redriven_to_its_group
            an_ordered_listener_handles_each_key_in_order_while_running_keys_in_parallel
            ordered_groups_of_one_name_on_one_subject_each_and_on_both_are_independent
        );
        $crate::__conformance_cases!(
            #[$attr] [$factory] envelope:
            published_events_carry_the_cloudevents_envelope
            an_older_schema_version_is_upcast_and_a_message_without_the_envelope_is_version_1
        );
        $crate::__conformance_cases!(
            #[$attr] [$factory] request:
            a_request_gets_its_reply_with_payload_and_headers
            each_request_goes_to_one_member_of_each_responder_group
            a_request_without_responders_fails_at_once_as_no_responders
            a_responder_that_does_not_reply_makes_the_request_time_out
            a_closed_responder_gets_no_more_requests
            requests_are_not_events_nothing_is_stored
            typed_requests_get_decoded_replies_and_refusals_with_their_reason
        );
        $crate::__conformance_cases!(
            #[$attr] [$factory] signal:
            every_listener_gets_each_signal_in_order
            a_signal_reaches_only_its_subject_and_nobody_after_it
            signals_are_not_events_nothing_is_stored
        );
    };
}
