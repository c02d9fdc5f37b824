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
//! use ticketing_core::{events::ExpirationComplete, Bus, Id, Publisher};
//!
//! let bus = InMemoryBus::new();
//! let publisher = Publisher::<ExpirationComplete>::new(Arc::new(bus.clone()));
//! let order_id = Id::new();
//! publisher.publish(&ExpirationComplete { order_id }).await?;
//! assert_eq!(bus.published::<ExpirationComplete>(), vec![ExpirationComplete { order_id }]);
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use tokio::sync::Notify;
use tokio::time::Instant;

use ticketing_core::bus::{validate_group, validate_subject};
use ticketing_core::{
    Acknowledger, Bus, BusError, DeadLetter, Delivery, Event, Message, OutgoingMessage, PublishAck,
    SubscribeOptions, Subscription,
};

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
}

impl Default for InMemoryBusConfig {
    fn default() -> Self {
        InMemoryBusConfig {
            max_messages_per_subject: 1_000_000,
            max_bytes_per_subject: 1 << 30,
            duplicate_window: Duration::from_secs(120),
            max_duplicate_ids: 1_000_000,
            max_dead_letters: 100_000,
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
    settle_waiters: AtomicUsize,
    changed: Notify,
}

type ConsumerId = usize;
type LogId = usize;

#[derive(Default)]
struct State {
    config: InMemoryBusConfig,
    log_ids: HashMap<Arc<str>, LogId>,
    logs: Vec<Log>,
    consumer_ids: HashMap<(LogId, Arc<str>), ConsumerId>,
    consumers: Vec<Consumer>,
    dedup: HashMap<Arc<str>, u64>,
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
    bytes: usize,
    consumers: Vec<ConsumerId>,
    held: HashMap<u64, Hold>,
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
    pending: HashMap<u64, Pending>,
    deadlines: BTreeSet<(Instant, u64)>,
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
    consumer: ConsumerId,
    letter: DeadLetter,
}

#[derive(Default)]
struct FaultState {
    active: bool,
    duplicate_deliveries: HashMap<String, u32>,
    dropped_acks: HashMap<String, u32>,
    failed_publishes: HashMap<String, u32>,
    holds: HashMap<String, Option<(u32, Duration)>>,
}

impl FaultState {
    fn refresh(&mut self) {
        self.active = !(self.duplicate_deliveries.is_empty()
            && self.dropped_acks.is_empty()
            && self.failed_publishes.is_empty()
            && self.holds.is_empty());
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

enum Taken {
    Delivery(Arc<Message>, u32),
    Wait(Option<Instant>),
}

impl State {
    fn log_id(&mut self, subject: &str) -> LogId {
        if let Some(&id) = self.log_ids.get(subject) {
            return id;
        }
        let subject: Arc<str> = Arc::from(subject);
        let id = self.logs.len();
        self.logs.push(Log {
            subject: subject.clone(),
            first_seq: 1,
            messages: VecDeque::new(),
            bytes: 0,
            consumers: Vec::new(),
            held: HashMap::new(),
        });
        self.log_ids.insert(subject, id);
        id
    }

    fn next_order(&mut self) -> u64 {
        self.next_order += 1;
        self.next_order
    }

    fn publish(&mut self, message: OutgoingMessage) -> Result<PublishAck, BusError> {
        // The clock is read only when something time-based needs it.
        let now =
            (message.message_id.is_some() || !self.dedup_order.is_empty() || self.faults.active)
                .then(Instant::now);
        if self.faults.active
            && FaultState::take(&mut self.faults.failed_publishes, &message.subject)
        {
            self.faults.refresh();
            return Err(BusError::Injected(format!(
                "publish to {} failed",
                message.subject
            )));
        }
        if let Some(now) = now {
            self.expire_dedup(now);
        }
        if let Some(id) = &message.message_id {
            if let Some(&sequence) = self.dedup.get(id.as_str()) {
                return Ok(PublishAck {
                    sequence,
                    duplicate: true,
                });
            }
        }
        let log_id = match self.log_ids.get(message.subject.as_str()) {
            Some(&id) => id,
            None => {
                validate_subject(&message.subject)?;
                self.log_id(&message.subject)
            }
        };
        let config = self.config;
        let log = &mut self.logs[log_id];
        let sequence = log.next_seq();
        let size = message.payload.len()
            + message.subject.len()
            + message
                .headers
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>();
        let stored = Message {
            subject: message.subject,
            payload: message.payload,
            headers: message.headers,
            sequence,
        };
        log.messages.push_back(Arc::new(stored));
        log.bytes += size;
        while log.messages.len() > config.max_messages_per_subject
            || (log.bytes > config.max_bytes_per_subject && log.messages.len() > 1)
        {
            if let Some(old) = log.messages.pop_front() {
                log.bytes -= old.payload.len()
                    + old.subject.len()
                    + old
                        .headers
                        .iter()
                        .map(|(k, v)| k.len() + v.len())
                        .sum::<usize>();
                log.held.remove(&old.sequence);
                log.first_seq += 1;
            }
        }
        if let (true, Some(now)) = (self.faults.active, now) {
            let subject = log.subject.to_string();
            if let Some(hold) = self.faults.holds.get_mut(&subject) {
                match hold {
                    None => {
                        log.held.insert(sequence, Hold::UntilReleased);
                    }
                    Some((count, delay)) => {
                        log.held.insert(sequence, Hold::Until(now + *delay));
                        *count -= 1;
                        if *count == 0 {
                            self.faults.holds.remove(&subject);
                            self.faults.refresh();
                        }
                    }
                }
            }
        }
        if let Some(id) = message.message_id {
            let id: Arc<str> = Arc::from(id);
            self.dedup.insert(id.clone(), sequence);
            self.dedup_order
                .push_back((now.unwrap_or_else(Instant::now), id));
            if self.dedup_order.len() > config.max_duplicate_ids {
                if let Some((_, old)) = self.dedup_order.pop_front() {
                    self.dedup.remove(&old);
                }
            }
        }
        for &id in &self.logs[log_id].consumers {
            self.consumers[id].wake();
        }
        Ok(PublishAck {
            sequence,
            duplicate: false,
        })
    }

    fn expire_dedup(&mut self, now: Instant) {
        let window = self.config.duplicate_window;
        while let Some((at, _)) = self.dedup_order.front() {
            if now.duration_since(*at) < window {
                break;
            }
            if let Some((_, id)) = self.dedup_order.pop_front() {
                self.dedup.remove(&id);
            }
        }
    }

    fn join(&mut self, subject: &str, group: &str, options: SubscribeOptions) -> ConsumerId {
        let log_id = self.log_id(subject);
        let group: Arc<str> = Arc::from(group);
        let id = match self.consumer_ids.get(&(log_id, group.clone())) {
            Some(&id) => id,
            None => {
                let id = self.consumers.len();
                let notify = Arc::new(Notify::new());
                let log = &mut self.logs[log_id];
                self.consumers.push(Consumer {
                    log: log_id,
                    group: group.clone(),
                    options,
                    notify,
                    sleepers: 0,
                    members: 0,
                    cursor: log.first_seq,
                    pending: HashMap::new(),
                    deadlines: BTreeSet::new(),
                    due: BTreeMap::new(),
                    parked: Vec::new(),
                    skip: std::collections::HashSet::new(),
                    stats: GroupStats::default(),
                });
                log.consumers.push(id);
                self.consumer_ids.insert((log_id, group), id);
                id
            }
        };
        let consumer = &mut self.consumers[id];
        consumer.options = options;
        consumer.members += 1;
        id
    }

    fn take(&mut self, id: ConsumerId, now: Instant) -> Taken {
        loop {
            self.expire_pending(id, now);
            let consumer = &mut self.consumers[id];
            if let Some(entry) = consumer.due.first_entry() {
                if entry.key().0 <= now {
                    let waiting = entry.remove();
                    let attempt = waiting.attempts + 1;
                    if attempt > consumer.options.max_deliver {
                        let reason = format!(
                            "delivered {} times without an ack (max_deliver {})",
                            waiting.attempts, consumer.options.max_deliver
                        );
                        self.dead_letter(id, waiting.message, waiting.attempts, reason);
                        continue;
                    }
                    return self.deliver(id, waiting.message, attempt, now);
                }
            }
            let unacked = consumer.pending.len() + consumer.due.len();
            if unacked < consumer.options.max_ack_pending {
                let log = &mut self.logs[consumer.log];
                consumer.cursor = consumer.cursor.max(log.first_seq);
                while let Some(message) = log.get(consumer.cursor).cloned() {
                    consumer.cursor += 1;
                    if !consumer.skip.is_empty() && consumer.skip.remove(&message.sequence) {
                        continue;
                    }
                    match log.held.get(&message.sequence) {
                        None => return self.deliver(id, message, 1, now),
                        Some(Hold::Until(at)) if *at <= now => {
                            return self.deliver(id, message, 1, now);
                        }
                        Some(Hold::Until(at)) => {
                            let at = *at;
                            self.next_order += 1;
                            let order = self.next_order;
                            self.consumers[id].due.insert(
                                (at, order),
                                Waiting {
                                    message,
                                    attempts: 0,
                                },
                            );
                            break;
                        }
                        Some(Hold::UntilReleased) => consumer.parked.push(message),
                    }
                }
                if self.consumers[id].cursor < self.logs[self.consumers[id].log].next_seq() {
                    continue;
                }
            }
            let consumer = &self.consumers[id];
            let next_deadline = consumer.deadlines.first().map(|(at, _)| *at);
            let next_due = consumer.due.first_key_value().map(|((at, _), _)| *at);
            let wake = match (next_deadline, next_due) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            return Taken::Wait(wake);
        }
    }

    fn deliver(
        &mut self,
        id: ConsumerId,
        message: Arc<Message>,
        attempt: u32,
        now: Instant,
    ) -> Taken {
        let duplicate = self.faults.active
            && FaultState::take(&mut self.faults.duplicate_deliveries, &message.subject);
        if duplicate {
            self.faults.refresh();
        }
        let order = self.next_order();
        let consumer = &mut self.consumers[id];
        let deadline = now + consumer.options.ack_wait;
        let sequence = message.sequence;
        if let Some(previous) = consumer.pending.insert(
            sequence,
            Pending {
                message: message.clone(),
                attempt,
                deadline,
            },
        ) {
            consumer.deadlines.remove(&(previous.deadline, sequence));
        }
        consumer.deadlines.insert((deadline, sequence));
        consumer.stats.delivered += 1;
        if attempt > 1 {
            consumer.stats.redelivered += 1;
        }
        if duplicate {
            consumer.due.insert(
                (now, order),
                Waiting {
                    message: message.clone(),
                    attempts: attempt,
                },
            );
        }
        Taken::Delivery(message, attempt)
    }

    fn expire_pending(&mut self, id: ConsumerId, now: Instant) {
        loop {
            let consumer = &mut self.consumers[id];
            let Some(&(deadline, sequence)) = consumer.deadlines.first() else {
                return;
            };
            if deadline > now {
                return;
            }
            consumer.deadlines.pop_first();
            let Some(pending) = consumer.pending.remove(&sequence) else {
                continue;
            };
            consumer.stats.ack_timeouts += 1;
            if pending.attempt >= consumer.options.max_deliver {
                let reason = format!(
                    "delivered {} times without an ack (max_deliver {})",
                    pending.attempt, consumer.options.max_deliver
                );
                self.dead_letter(id, pending.message, pending.attempt, reason);
            } else {
                let order = self.next_order();
                self.consumers[id].due.insert(
                    (now, order),
                    Waiting {
                        message: pending.message,
                        attempts: pending.attempt,
                    },
                );
            }
        }
    }

    fn dead_letter(
        &mut self,
        id: ConsumerId,
        message: Arc<Message>,
        attempts: u32,
        reason: String,
    ) {
        let consumer = &mut self.consumers[id];
        consumer.stats.dead_lettered += 1;
        tracing::warn!(
            subject = %message.subject,
            group = %consumer.group,
            sequence = message.sequence,
            attempts,
            %reason,
            "message dead-lettered"
        );
        self.next_dead_letter += 1;
        let letter = DeadLetter {
            id: self.next_dead_letter,
            message: Message::clone(&message),
            group: consumer.group.to_string(),
            attempts,
            reason,
            at: SystemTime::now(),
        };
        self.dead_letters.insert(
            letter.id,
            DeadEntry {
                consumer: id,
                letter,
            },
        );
        while self.dead_letters.len() > self.config.max_dead_letters {
            self.dead_letters.pop_first();
        }
    }

    fn settle(&mut self, id: ConsumerId, sequence: u64, attempt: u32, how: Settle<'_>) {
        let consumer = &mut self.consumers[id];
        let Some(pending) = consumer.pending.get_mut(&sequence) else {
            // Already acked, terminated, or expired and handed out again.
            return;
        };
        let is_current = pending.attempt == attempt;
        match how {
            Settle::Progress => {
                if is_current {
                    let old = pending.deadline;
                    pending.deadline = Instant::now() + consumer.options.ack_wait;
                    let new = pending.deadline;
                    consumer.deadlines.remove(&(old, sequence));
                    consumer.deadlines.insert((new, sequence));
                }
                return;
            }
            // A late ack of an earlier delivery still acks the message, as in JetStream.
            Settle::Ack => {}
            Settle::Nak(_) | Settle::Term(_) if !is_current => return,
            Settle::Nak(_) | Settle::Term(_) => {}
        }
        let was_full =
            consumer.pending.len() + consumer.due.len() >= consumer.options.max_ack_pending;
        let Some(pending) = consumer.pending.remove(&sequence) else {
            return;
        };
        consumer.deadlines.remove(&(pending.deadline, sequence));
        match how {
            Settle::Ack => {
                consumer.stats.acked += 1;
                if was_full {
                    consumer.wake();
                }
            }
            Settle::Nak(_) if pending.attempt >= consumer.options.max_deliver => {
                consumer.stats.nacked += 1;
                let reason = format!(
                    "nacked on delivery {} of max_deliver {}",
                    pending.attempt, consumer.options.max_deliver
                );
                self.dead_letter(id, pending.message, pending.attempt, reason);
                if was_full {
                    self.consumers[id].wake();
                }
            }
            Settle::Nak(delay) => {
                consumer.stats.nacked += 1;
                let order = self.next_order();
                let consumer = &mut self.consumers[id];
                consumer.due.insert(
                    (Instant::now() + delay, order),
                    Waiting {
                        message: pending.message,
                        attempts: pending.attempt,
                    },
                );
                consumer.wake();
            }
            Settle::Term(reason) => {
                self.dead_letter(id, pending.message, pending.attempt, reason.to_owned());
                if was_full {
                    self.consumers[id].wake();
                }
            }
            Settle::Progress => {}
        }
    }

    fn stats(&self, id: ConsumerId) -> GroupStats {
        let consumer = &self.consumers[id];
        let log = &self.logs[consumer.log];
        GroupStats {
            in_flight: consumer.pending.len() as u64,
            waiting: consumer.due.len() as u64,
            undelivered: log
                .next_seq()
                .saturating_sub(consumer.cursor.max(log.first_seq)),
            members: consumer.members as u64,
            ..consumer.stats
        }
    }

    /// `None` when settled, else the time something is next due (if any).
    fn unsettled(&self, except: &[&str]) -> Option<Option<Instant>> {
        let mut busy = false;
        let mut wake: Option<Instant> = None;
        for consumer in self
            .consumers
            .iter()
            .filter(|c| c.members > 0 && !except.contains(&&*c.group))
        {
            let log = &self.logs[consumer.log];
            // Held messages count until a member has seen (and parked) them.
            let undelivered = consumer.cursor.max(log.first_seq) < log.next_seq();
            if !consumer.pending.is_empty() || !consumer.due.is_empty() || undelivered {
                busy = true;
                let candidates = consumer
                    .deadlines
                    .first()
                    .map(|(at, _)| *at)
                    .into_iter()
                    .chain(consumer.due.first_key_value().map(|((at, _), _)| *at));
                for at in candidates {
                    wake = Some(wake.map_or(at, |w: Instant| w.min(at)));
                }
            }
        }
        busy.then_some(wake)
    }
}

enum Settle<'a> {
    Ack,
    Nak(Duration),
    Term(&'a str),
    Progress,
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

    /// The retained messages of `subject`, oldest first.
    pub fn messages(&self, subject: &str) -> Vec<Message> {
        let state = self.shared.lock();
        state
            .log_ids
            .get(subject)
            .map(|&id| {
                state.logs[id]
                    .messages
                    .iter()
                    .map(|m| Message::clone(m))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The retained events of type `E`, oldest first. Payloads that do not decode as `E` are
    /// skipped (they are in [`messages`](Self::messages)).
    pub fn published<E: Event>(&self) -> Vec<E> {
        self.messages(E::SUBJECT)
            .iter()
            .filter_map(|m| serde_json::from_slice(&m.payload).ok())
            .collect()
    }

    /// What the queue group `group` did on `subject`, if it exists.
    pub fn group_stats(&self, subject: &str, group: &str) -> Option<GroupStats> {
        let state = self.shared.lock();
        let log = *state.log_ids.get(subject)?;
        let id = *state.consumer_ids.get(&(log, Arc::from(group)))?;
        Some(state.stats(id))
    }

    /// Every queue group as `(subject, group, stats)`.
    pub fn groups(&self) -> Vec<(String, String, GroupStats)> {
        let state = self.shared.lock();
        (0..state.consumers.len())
            .map(|id| {
                let c = &state.consumers[id];
                (
                    state.logs[c.log].subject.to_string(),
                    c.group.to_string(),
                    state.stats(id),
                )
            })
            .collect()
    }

    /// Waits until every group with a member has nothing in flight, nothing waiting for
    /// redelivery and nothing undelivered (held messages aside, once a member has reached them).
    /// On a paused clock the wait for a nak delay or an ack wait takes no real time.
    pub async fn settled(&self) {
        self.settled_except(&[]).await;
    }

    /// As [`settled`](Self::settled), leaving out these queue groups: groups that hold
    /// messages back on purpose for long, such as a scheduler's durable timers.
    pub async fn settled_except(&self, except: &[&str]) {
        struct Waiter<'a>(&'a AtomicUsize);
        impl Drop for Waiter<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::AcqRel);
            }
        }
        self.shared.settle_waiters.fetch_add(1, Ordering::AcqRel);
        let _waiter = Waiter(&self.shared.settle_waiters);
        loop {
            let mut notified = pin!(self.shared.changed.notified());
            notified.as_mut().enable();
            let wake = match self.shared.lock().unsettled(except) {
                None => return,
                Some(wake) => wake,
            };
            match wake {
                Some(at) => {
                    tokio::select! {
                        _ = notified => {}
                        _ = tokio::time::sleep_until(at) => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    /// Fault injection.
    pub fn faults(&self) -> Faults<'_> {
        Faults { bus: self }
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

/// Injects the failures real brokers produce. `subject` `"*"` means any subject.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use ticketing_bus::memory::{InMemoryBus, ReleaseOrder};
/// use ticketing_core::{Bus, OutgoingMessage};
///
/// let bus = InMemoryBus::new();
/// bus.faults().hold("ticket:updated");
/// // ... publish versions 1, 2, 3: stored, but no group sees them yet ...
/// bus.faults().release("ticket:updated", ReleaseOrder::Reversed);
/// bus.faults().fail_next_publish("*");
/// assert!(bus.publish(OutgoingMessage::new("ticket:created", "{}")).await.is_err());
/// # }
/// ```
pub struct Faults<'a> {
    bus: &'a InMemoryBus,
}

impl Faults<'_> {
    fn with(&self, change: impl FnOnce(&mut FaultState)) {
        let mut state = self.bus.shared.lock();
        change(&mut state.faults);
        state.faults.refresh();
    }

    /// The next delivery on `subject` is delivered twice (the copy goes to any member, as a
    /// redelivery).
    pub fn duplicate_next_delivery(&self, subject: &str) {
        self.with(|f| {
            *f.duplicate_deliveries
                .entry(subject.to_owned())
                .or_default() += 1
        });
    }

    /// The next ack on `subject` is lost: the caller sees success, the message is redelivered
    /// after its ack wait.
    pub fn drop_next_ack(&self, subject: &str) {
        self.with(|f| *f.dropped_acks.entry(subject.to_owned()).or_default() += 1);
    }

    /// The next publish to `subject` fails with [`BusError::Injected`].
    pub fn fail_next_publish(&self, subject: &str) {
        self.with(|f| *f.failed_publishes.entry(subject.to_owned()).or_default() += 1);
    }

    /// Messages published to `subject` from now on are stored but delivered to no group until
    /// [`release`](Self::release).
    pub fn hold(&self, subject: &str) {
        self.with(|f| {
            f.holds.insert(subject.to_owned(), None);
        });
    }

    /// The next `count` messages published to `subject` reach their groups only `delay` after
    /// they were published; later ones overtake them.
    pub fn delay_next(&self, subject: &str, count: u32, delay: Duration) {
        if count > 0 {
            self.with(|f| {
                f.holds.insert(subject.to_owned(), Some((count, delay)));
            });
        }
    }

    /// Ends the hold on `subject` and hands the held messages to every group, in `order`.
    pub fn release(&self, subject: &str, order: ReleaseOrder) {
        let mut state = self.bus.shared.lock();
        state.faults.holds.remove(subject);
        state.faults.refresh();
        let Some(&log_id) = state.log_ids.get(subject) else {
            return;
        };
        let now = Instant::now();
        let released: Vec<Arc<Message>> = {
            let log = &state.logs[log_id];
            let mut seqs: Vec<u64> = log
                .held
                .iter()
                .filter(|(_, hold)| matches!(hold, Hold::UntilReleased))
                .map(|(seq, _)| *seq)
                .collect();
            seqs.sort_unstable();
            seqs.iter()
                .filter_map(|seq| log.get(*seq).cloned())
                .collect()
        };
        state.logs[log_id]
            .held
            .retain(|_, hold| !matches!(hold, Hold::UntilReleased));
        let consumers = state.logs[log_id].consumers.clone();
        for id in consumers {
            let consumer = &mut state.consumers[id];
            let mut parked = std::mem::take(&mut consumer.parked);
            // Held messages this group has not reached yet are queued now and skipped later.
            for message in &released {
                if message.sequence >= consumer.cursor {
                    consumer.skip.insert(message.sequence);
                    parked.push(message.clone());
                }
            }
            parked.sort_by_key(|m| m.sequence);
            if order == ReleaseOrder::Reversed {
                parked.reverse();
            }
            for message in parked {
                let order = state.next_order();
                state.consumers[id].due.insert(
                    (now, order),
                    Waiting {
                        message,
                        attempts: 0,
                    },
                );
            }
            state.consumers[id].wake();
        }
    }

    /// Removes every injected fault that has not fired yet (holds included, without releasing
    /// what they hold).
    pub fn clear(&self) {
        self.with(|f| {
            f.duplicate_deliveries.clear();
            f.dropped_acks.clear();
            f.failed_publishes.clear();
            f.holds.clear();
        });
    }
}

#[async_trait]
impl Bus for InMemoryBus {
    async fn publish(&self, message: OutgoingMessage) -> Result<PublishAck, BusError> {
        let ack = self.shared.lock().publish(message)?;
        self.shared.changed();
        Ok(ack)
    }

    async fn subscribe(
        &self,
        subject: &str,
        group: &str,
        options: SubscribeOptions,
    ) -> Result<Box<dyn Subscription>, BusError> {
        validate_subject(subject)?;
        validate_group(group)?;
        let mut state = self.shared.lock();
        let id = state.join(subject, group, options);
        let consumer = &state.consumers[id];
        Ok(Box::new(InMemorySubscription {
            shared: self.shared.clone(),
            id,
            group: consumer.group.clone(),
            notify: consumer.notify.clone(),
            sleeping: false,
        }))
    }

    async fn dead_letters(&self) -> Result<Vec<DeadLetter>, BusError> {
        let mut state = self.shared.lock();
        // Deliveries whose last ack wait ran out while no member was asking are dead letters.
        let now = Instant::now();
        for id in 0..state.consumers.len() {
            state.expire_pending(id, now);
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
        let order = state.next_order();
        let consumer = &mut state.consumers[entry.consumer];
        consumer.due.insert(
            (Instant::now(), order),
            Waiting {
                message: Arc::new(entry.letter.message),
                attempts: 0,
            },
        );
        consumer.wake();
        drop(state);
        self.shared.changed();
        Ok(())
    }
}

struct InMemorySubscription {
    shared: Arc<Shared>,
    id: ConsumerId,
    group: Arc<str>,
    notify: Arc<Notify>,
    /// Counted in the consumer's sleepers.
    sleeping: bool,
}

impl InMemorySubscription {
    fn try_take(&mut self) -> Option<Delivery> {
        let mut state = self.shared.lock();
        if self.sleeping {
            state.consumers[self.id].sleepers -= 1;
            self.sleeping = false;
        }
        match state.take(self.id, Instant::now()) {
            Taken::Delivery(message, attempt) => Some(self.delivery(message, attempt)),
            Taken::Wait(_) => None,
        }
    }

    fn take_or_sleep(&mut self) -> Result<Delivery, Option<Instant>> {
        let mut state = self.shared.lock();
        match state.take(self.id, Instant::now()) {
            Taken::Delivery(message, attempt) => Ok(self.delivery(message, attempt)),
            Taken::Wait(wake) => {
                state.consumers[self.id].sleepers += 1;
                self.sleeping = true;
                Err(wake)
            }
        }
    }

    fn delivery(&self, message: Arc<Message>, attempt: u32) -> Delivery {
        let acker = InMemoryAcker {
            shared: self.shared.clone(),
            consumer: self.id,
            sequence: message.sequence,
            attempt,
        };
        Delivery::new(message, self.group.clone(), attempt, Box::new(acker))
    }
}

#[async_trait]
impl Subscription for InMemorySubscription {
    async fn next(&mut self) -> Option<Result<Delivery, BusError>> {
        loop {
            // Fast path: something is ready, no wake-up registration needed.
            if let Some(delivery) = self.try_take() {
                return Some(Ok(delivery));
            }
            // The member may have parked held messages or expired deliveries.
            self.shared.changed();
            let notify = self.notify.clone();
            let mut notified = pin!(notify.notified());
            notified.as_mut().enable();
            // Check again once registered, counting this member as asleep under the lock that
            // publishers take, so no wake-up is lost.
            let wake = match self.take_or_sleep() {
                Ok(delivery) => return Some(Ok(delivery)),
                Err(wake) => wake,
            };
            match wake {
                Some(at) => tokio::select! {
                    _ = notified => {}
                    _ = tokio::time::sleep_until(at) => {}
                },
                None => notified.await,
            }
        }
    }

    async fn close(self: Box<Self>) -> Result<(), BusError> {
        // Nothing is prefetched; leaving is done by Drop.
        Ok(())
    }
}

impl Drop for InMemorySubscription {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        let consumer = &mut state.consumers[self.id];
        consumer.members -= 1;
        if self.sleeping {
            consumer.sleepers -= 1;
        }
        drop(state);
        self.shared.changed();
    }
}

struct InMemoryAcker {
    shared: Arc<Shared>,
    consumer: ConsumerId,
    sequence: u64,
    attempt: u32,
}

impl InMemoryAcker {
    fn settle(&self, how: Settle<'_>) {
        let mut state = self.shared.lock();
        if matches!(how, Settle::Ack) && state.faults.active {
            let subject = state.logs[state.consumers[self.consumer].log]
                .subject
                .clone();
            if FaultState::take(&mut state.faults.dropped_acks, &subject) {
                state.faults.refresh();
                return;
            }
        }
        state.settle(self.consumer, self.sequence, self.attempt, how);
        drop(state);
        self.shared.changed();
    }
}

#[async_trait]
impl Acknowledger for InMemoryAcker {
    async fn ack(&self) -> Result<(), BusError> {
        self.settle(Settle::Ack);
        Ok(())
    }

    async fn nak(&self, delay: Option<Duration>) -> Result<(), BusError> {
        self.settle(Settle::Nak(delay.unwrap_or_default()));
        Ok(())
    }

    async fn term(&self, reason: &str) -> Result<(), BusError> {
        self.settle(Settle::Term(reason));
        Ok(())
    }

    async fn progress(&self) -> Result<(), BusError> {
        self.settle(Settle::Progress);
        Ok(())
    }
}
