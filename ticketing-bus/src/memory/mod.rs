//! The in-memory bus: a semantic twin of NATS JetStream, and a test harness.
//!
//! # Model
//!
//! - Each subject has an ordered log with sequence numbers from 1, bounded by
//!   [`InMemoryBusConfig::max_messages_per_subject`] and
//!   [`max_bytes_per_subject`](InMemoryBusConfig::max_bytes_per_subject): the oldest messages
//!   are dropped first, as a JetStream stream with limits retention does.
//! - A queue group on a subject is a durable consumer: it starts at the first retained message
//!   (deliver-all) and keeps its place while it has no members, so a restarted member resumes
//!   where the group left off.
//! - A delivery is pending until settled. Past `ack_wait` it is redelivered to any member, its
//!   attempt one higher; `nak(delay)` redelivers no sooner than the delay; `progress` restarts the
//!   clock; `term` dead-letters; after `max_deliver` deliveries the message is dead-lettered.
//! - New messages stop flowing to a group with `max_ack_pending` unacknowledged messages.
//! - Publishes with a message id seen inside
//!   [`duplicate_window`](InMemoryBusConfig::duplicate_window) are acknowledged as duplicates and
//!   not stored.
//!
//! All timing is on tokio time: tests can run on a paused clock (`#[tokio::test(start_paused =
//! true)]`) and never sleep for real.
//!
//! # Harness
//!
//! [`InMemoryBus::published`] decodes what was published; [`InMemoryBus::group_stats`] tells what
//! each group consumed, acked, retried and dead-lettered; [`InMemoryBus::settled`] waits until
//! nothing is in flight or due; [`InMemoryBus::faults`] injects the failures real brokers
//! produce: duplicate deliveries, held and reordered messages, delays, lost acks, failed
//! publishes.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use ticketing_bus::memory::InMemoryBus;
//! use ticketing_core::ticketing::events::ExpirationComplete;
//! use ticketing_core::{Bus, Id, Publisher};
//!
//! let bus = InMemoryBus::new();
//! let publisher = Publisher::<ExpirationComplete>::new(Arc::new(bus.clone()));
//! let order_id = Id::new();
//! publisher.publish(&ExpirationComplete { order_id }).await?;
//! assert_eq!(bus.published::<ExpirationComplete>(), vec![ExpirationComplete { order_id }]);
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! | file | concern |
//! |---|---|
//! | `mod.rs` | the bus, its state and the [`Bus`] implementation |
//! | `log.rs` | per-subject logs, retention and de-duplication |
//! | `consumer.rs` | queue groups: delivery, ack wait, nak, term, dead letters, members |
//! | `faults.rs` | fault injection ([`Faults`]); a single flag keeps it off the hot path |
//! | `harness.rs` | what tests look at: published events, group stats, `settled` |
//! | `rpc.rs` | request/reply: responder groups, one member of each per request |
//! | `signal.rs` | signals: a broadcast channel per subject, nothing stored |
//!
#![doc = include_str!("../../docs/memory.md")]

use std::collections::{BTreeMap, HashMap, VecDeque};

/// The maps on the hot path (sequences, subjects, message ids) hash with foldhash: keys come
/// from the application, not from an attacker, and SipHash showed in the profile.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
use std::fmt;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use tokio::sync::Notify;
use tokio::time::Instant;

use ticketing_core::bus::{validate_member, validate_subject};
use ticketing_core::outbox::Outbox;
use ticketing_core::{
    Acknowledger, Bus, BusError, DeadLetter, Delivery, Event, Message, OutgoingMessage, PublishAck,
    SubscribeOptions, Subscription,
};

mod consumer;
mod deadlines;
mod faults;
mod harness;
mod log;
mod ordered;
mod rpc;
mod signal;

pub use faults::Faults;

use consumer::InMemorySubscription;
use deadlines::Deadlines;

/// Limits of an [`InMemoryBus`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InMemoryBusConfig {
    /// Messages kept per subject; older ones are dropped. Default 1,000,000.
    pub max_messages_per_subject: usize,
    /// Bytes (payload, subject and headers) kept per subject. Default 1 GiB.
    pub max_bytes_per_subject: usize,
    /// How long a message id is remembered for de-duplication. Default 2 minutes (JetStream's
    /// default).
    pub duplicate_window: Duration,
    /// Message ids remembered at most, whatever the window. Default 1,000,000.
    pub max_duplicate_ids: usize,
    /// Dead letters kept; the oldest are dropped past it. Default 100,000.
    pub max_dead_letters: usize,
    /// Partitions of an ordered group ([`Bus::subscribe_ordered`]), as on NATS with as many:
    /// a key's events go in its partition's queue, and each key has one message out at a time.
    /// Default 16.
    pub partitions: u32,
}

impl Default for InMemoryBusConfig {
    fn default() -> Self {
        InMemoryBusConfig {
            max_messages_per_subject: 1_000_000,
            max_bytes_per_subject: 1 << 30,
            duplicate_window: Duration::from_secs(120),
            max_duplicate_ids: 1_000_000,
            max_dead_letters: 100_000,
            partitions: 16,
        }
    }
}

/// What one queue group on one subject did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupStats {
    /// Deliveries, first ones and redeliveries.
    pub delivered: u64,
    /// Deliveries with an attempt above 1.
    pub redelivered: u64,
    /// Acks.
    pub acked: u64,
    /// Naks (retries asked for).
    pub nacked: u64,
    /// Deliveries that ran out of ack wait.
    pub ack_timeouts: u64,
    /// Messages dead-lettered, by `term` or past `max_deliver`.
    pub dead_lettered: u64,
    /// Messages delivered and not yet settled.
    pub in_flight: u64,
    /// Messages waiting for redelivery.
    pub waiting: u64,
    /// Messages published but not yet delivered to this group.
    pub undelivered: u64,
    /// Members now subscribed.
    pub members: u64,
}

/// The order in which [`Faults::release`] hands held messages to their groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleaseOrder {
    /// In publish order.
    InOrder,
    /// Newest first.
    Reversed,
}

/// An in-memory bus. Cloning gives another handle to the same bus.
#[derive(Clone, Default)]
pub struct InMemoryBus {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    rpc: Arc<rpc::Rpc>,
    signals: signal::SignalChannels,
    settle_waiters: AtomicUsize,
    changed: Notify,
}

type ConsumerId = usize;
type LogId = usize;

#[derive(Default)]
struct State {
    config: InMemoryBusConfig,
    log_ids: FastMap<Arc<str>, LogId>,
    logs: Vec<Log>,
    consumer_ids: FastMap<(LogId, Arc<str>), ConsumerId>,
    consumers: Vec<Consumer>,
    ordered: Vec<ordered::Ordered>,
    ordered_ids: FastMap<Arc<str>, ordered::OrderedId>,
    /// Publishes so far: each stored message's place in the order across subjects.
    stamps: u64,
    dedup: FastMap<Arc<str>, u64>,
    dedup_order: VecDeque<(Instant, Arc<str>)>,
    dead_letters: BTreeMap<u64, DeadEntry>,
    next_dead_letter: u64,
    next_order: u64,
    faults: FaultState,
}

struct Log {
    subject: Arc<str>,
    first_seq: u64,
    messages: VecDeque<Arc<Message>>,
    /// When each retained message was stored, aligned with `messages`.
    published: VecDeque<Instant>,
    /// The bus-wide publish order of each retained message, aligned with `messages`.
    stamps: VecDeque<u64>,
    bytes: usize,
    consumers: Vec<ConsumerId>,
    /// Ordered groups consuming this subject.
    ordered: Vec<ordered::OrderedId>,
    held: FastMap<u64, Hold>,
}

#[derive(Clone, Copy)]
enum Hold {
    UntilReleased,
    Until(Instant),
}

impl Log {
    fn next_seq(&self) -> u64 {
        self.first_seq + self.messages.len() as u64
    }

    fn get(&self, seq: u64) -> Option<&Arc<Message>> {
        let index = seq.checked_sub(self.first_seq)?;
        self.messages.get(usize::try_from(index).ok()?)
    }

    fn published(&self, seq: u64) -> Option<Instant> {
        let index = seq.checked_sub(self.first_seq)?;
        self.published.get(usize::try_from(index).ok()?).copied()
    }
}

struct Consumer {
    log: LogId,
    group: Arc<str>,
    options: SubscribeOptions,
    notify: Arc<Notify>,
    /// Members waiting on `notify`; wake-ups are skipped while there are none.
    sleepers: usize,
    members: usize,
    cursor: u64,
    pending: FastMap<u64, Pending>,
    deadlines: Deadlines,
    due: BTreeMap<(Instant, u64), Waiting>,
    parked: Vec<Arc<Message>>,
    /// Held messages a release queued before the cursor reached them: skipped at the cursor.
    skip: std::collections::HashSet<u64>,
    stats: GroupStats,
}

impl Consumer {
    fn wake(&self) {
        if self.sleepers > 0 {
            self.notify.notify_waiters();
        }
    }
}

struct Pending {
    message: Arc<Message>,
    attempt: u32,
    deadline: Instant,
}

struct Waiting {
    message: Arc<Message>,
    attempts: u32,
}

struct DeadEntry {
    target: Target,
    letter: DeadLetter,
}

/// The consumer a dead letter came from, where a redrive delivers it again.
#[derive(Clone, Copy)]
enum Target {
    Plain(ConsumerId),
    Ordered(ordered::OrderedId),
}

#[derive(Default)]
struct FaultState {
    active: bool,
    duplicate_deliveries: HashMap<String, u32>,
    dropped_acks: HashMap<String, u32>,
    failed_publishes: HashMap<String, u32>,
    failed_pulls: HashMap<String, u32>,
    slow_publishes: HashMap<String, Duration>,
    holds: HashMap<String, Option<(u32, Duration)>>,
}

impl FaultState {
    fn refresh(&mut self) {
        self.active = !(self.duplicate_deliveries.is_empty()
            && self.dropped_acks.is_empty()
            && self.failed_publishes.is_empty()
            && self.failed_pulls.is_empty()
            && self.slow_publishes.is_empty()
            && self.holds.is_empty());
    }

    /// How long a publish to `subject` takes to be confirmed, if it is slowed.
    fn publish_delay(&self, subject: &str) -> Option<Duration> {
        if !self.active {
            return None;
        }
        [subject, "*"]
            .iter()
            .find_map(|key| self.slow_publishes.get(*key).copied())
    }

    /// Uses up one injected fault of `kind` for `subject` (or for any subject, `"*"`).
    fn take(map: &mut HashMap<String, u32>, subject: &str) -> bool {
        for key in [subject, "*"] {
            if let Some(count) = map.get_mut(key) {
                *count -= 1;
                if *count == 0 {
                    map.remove(key);
                }
                return true;
            }
        }
        false
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn changed(&self) {
        if self.settle_waiters.load(Ordering::Acquire) > 0 {
            self.changed.notify_waiters();
        }
    }
}

impl InMemoryBus {
    /// A new member of the group at `target`.
    fn member(
        &self,
        target: Target,
        group: &Arc<str>,
        notify: &Arc<Notify>,
    ) -> Box<dyn Subscription> {
        Box::new(InMemorySubscription {
            shared: self.shared.clone(),
            target,
            group: group.clone(),
            notify: notify.clone(),
            sleeping: false,
            spare: None,
        })
    }

    /// A bus with the default limits.
    pub fn new() -> Self {
        Self::with_config(InMemoryBusConfig::default())
    }

    /// A bus with these limits.
    pub fn with_config(config: InMemoryBusConfig) -> Self {
        let bus = InMemoryBus::default();
        bus.shared.lock().config = config;
        bus
    }

    /// This bus as the `Arc<dyn Bus>` services take.
    pub fn as_dyn(&self) -> Arc<dyn Bus> {
        Arc::new(self.clone())
    }
}

impl fmt::Debug for InMemoryBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.shared.lock();
        f.debug_struct("InMemoryBus")
            .field("subjects", &state.logs.len())
            .field("groups", &state.consumers.len())
            .field("dead_letters", &state.dead_letters.len())
            .finish()
    }
}

#[async_trait]
impl Bus for InMemoryBus {
    async fn request(
        &self,
        request: OutgoingMessage,
        timeout: Duration,
    ) -> Result<ticketing_core::Reply, BusError> {
        self.shared.rpc.request(request, timeout).await
    }

    async fn respond(
        &self,
        subject: &str,
        group: &str,
    ) -> Result<Box<dyn ticketing_core::Responder>, BusError> {
        self.shared.rpc.respond(subject, group)
    }

    async fn signal(&self, subject: &str, payload: bytes::Bytes) -> Result<(), BusError> {
        self.shared.signals.send(subject, payload)
    }

    async fn signals(&self, subject: &str) -> Result<ticketing_core::bus::Signals, BusError> {
        self.shared.signals.listen(subject)
    }

    async fn publish(&self, message: OutgoingMessage) -> Result<PublishAck, BusError> {
        // One lock per publish unless a fault slows it (a slow broker confirms later).
        let message = log::Prepared::new(message);
        let slowed = {
            let mut state = self.shared.lock();
            match state.faults.publish_delay(message.subject()) {
                None => Ok(state.publish(message)?),
                Some(delay) => Err((delay, message)),
            }
        };
        let ack = match slowed {
            Ok(ack) => ack,
            Err((delay, message)) => {
                tokio::time::sleep(delay).await;
                self.shared.lock().publish(message.stored_now())?
            }
        };
        self.shared.changed();
        Ok(ack)
    }

    async fn subscribe(
        &self,
        subject: &str,
        group: &str,
        options: SubscribeOptions,
    ) -> Result<Box<dyn Subscription>, BusError> {
        validate_member(&[subject], group)?;
        let mut state = self.shared.lock();
        let id = state.join(subject, group, options);
        let consumer = &state.consumers[id];
        Ok(self.member(Target::Plain(id), &consumer.group, &consumer.notify))
    }

    async fn subscribe_ordered(
        &self,
        subjects: &[&str],
        group: &str,
        options: SubscribeOptions,
    ) -> Result<Box<dyn Subscription>, BusError> {
        validate_member(subjects, group)?;
        let mut state = self.shared.lock();
        let id = state.join_ordered(subjects, group, options);
        let ordered = &state.ordered[id];
        Ok(self.member(Target::Ordered(id), &ordered.group, &ordered.notify))
    }

    async fn dead_letters(&self) -> Result<Vec<DeadLetter>, BusError> {
        let mut state = self.shared.lock();
        // Deliveries whose last ack wait ran out while no member was asking are dead letters.
        let now = Instant::now();
        for id in 0..state.consumers.len() {
            state.expire_pending(id, now);
        }
        for id in 0..state.ordered.len() {
            state.expire_ordered(id, now);
        }
        Ok(state
            .dead_letters
            .values()
            .map(|e| e.letter.clone())
            .collect())
    }

    async fn redrive(&self, id: u64) -> Result<(), BusError> {
        let mut state = self.shared.lock();
        let entry = state
            .dead_letters
            .remove(&id)
            .ok_or(BusError::DeadLetterNotFound(id))?;
        match entry.target {
            Target::Plain(id) => {
                let order = state.next_order();
                let consumer = &mut state.consumers[id];
                consumer.due.insert(
                    (Instant::now(), order),
                    Waiting {
                        message: Arc::new(entry.letter.message),
                        attempts: 0,
                    },
                );
                consumer.wake();
            }
            Target::Ordered(id) => state.redrive_ordered(id, entry.letter.message),
        }
        drop(state);
        self.shared.changed();
        Ok(())
    }
}
