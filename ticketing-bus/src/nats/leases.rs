//! Leased partitions: each partition of an ordered group is held by one member at a time,
//! which prefetches it and hands its keys out in parallel, one delivery per key at a time.
//!
//! The leases are keys of a JetStream key-value bucket, `{stream}_LEASES` (made by the bus, in
//! memory, with the events stream's replicas, history 1, entries lasting [`LEASE_TTL`]):
//! `{group}.p{k}` holds the id of the member that holds partition `k`, and `{group}.m.{member}`
//! says a member is there. Each member watches the group's keys (one ordered consumer of the
//! bucket, no request per round) and, every [`TICK`], renews its entries, counts the members
//! and takes or gives up partitions so that each holds at most its share
//! (`ceil(partitions / members)`); a new member waits [`JOIN_WINDOW`] before its first take, so
//! members that start together share from the start.
//!
//! A member gives a partition up cleanly: it stops pulling, lets what it handed out settle (at
//! most the ack wait), naks what it fetched but did not hand out, then deletes its lease. The
//! next holder starts at once: the naked messages come to it first, in order. A lease that
//! lapsed (its holder died, stalled or lost the broker) is taken over by another member, which
//! waits one ack wait before pulling if the partition has unacknowledged messages, so that the
//! old holder's deliveries come again before the key's later events; a member that gives such
//! a partition up before its wait is over purges the lease, so that the next holder waits too.

#[allow(clippy::wildcard_imports)]
use super::*;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use async_nats::jetstream::kv;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use ticketing_core::partition;

/// How often a member renews its lease entries and looks at its share of the partitions.
pub(super) const TICK: Duration = Duration::from_secs(1);
/// How long a lease, or a member's presence, lasts without renewal.
pub(super) const LEASE_TTL: Duration = Duration::from_secs(4);
/// How long a new member waits for others starting with it before it takes partitions.
pub(super) const JOIN_WINDOW: Duration = Duration::from_millis(250);

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The lease bucket of the events stream `stream`.
pub(super) fn bucket_of(stream: &str) -> String {
    let name: String = stream
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{name}_LEASES")
}

/// A key token for `name`: letters, digits, `-` and `_` as they are, any other byte `=XX`.
fn key_token(name: &str) -> String {
    let mut token = String::with_capacity(name.len());
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_' {
            token.push(char::from(byte));
        } else {
            token.push_str(&format!("={byte:02X}"));
        }
    }
    token
}

impl Inner {
    /// The lease bucket, made if it is not there.
    pub(super) async fn lease_bucket(&self) -> Result<kv::Store, BusError> {
        let bucket = bucket_of(&self.config.stream);
        if let Ok(store) = self.js.get_key_value(&bucket).await {
            return Ok(store);
        }
        self.js
            .create_key_value(kv::Config {
                bucket: bucket.clone(),
                description: format!(
                    "partition leases of the ordered groups on stream {}",
                    self.config.stream
                ),
                history: 1,
                max_age: LEASE_TTL,
                // Leases last seconds: kept in memory, they cost the server no disk writes, and a
                // restarted server has none, so members take their partitions again.
                storage: StorageType::Memory,
                num_replicas: self.config.replicas.max(1),
                ..Default::default()
            })
            .await
            .map_err(|e| backend(format!("cannot create the lease bucket {bucket}: {e}")))
    }
}

/// A message fetched from a held partition.
struct Pulled {
    partition: u32,
    key: Box<str>,
    sequence: u64,
    message: Arc<Message>,
    acker: Arc<NatsAcker>,
    attempt: u32,
    published: tokio::time::Instant,
    /// When its ack-wait clock last started.
    touched: tokio::time::Instant,
}

/// One key's events in this member: the head is handed out (or naked and due again), the
/// rest wait behind it.
struct Lane {
    partition: u32,
    head: u64,
    out: bool,
    /// The head delivered again while it is out (its ack wait ran out during the handling):
    /// handed out if the head is naked, dropped if it is acked (that acks the message).
    again: Option<Pulled>,
    parked: VecDeque<Pulled>,
}

/// What a member fetched, in lanes per key.
#[derive(Default)]
struct Gate {
    lanes: HashMap<Box<str>, Lane>,
    ready: VecDeque<Pulled>,
    /// Partitions being given up: their lanes no longer move.
    closing: HashSet<u32>,
}

impl Gate {
    /// Takes in a fetched message; true if it is ready to hand out.
    fn admit(&mut self, pulled: Pulled) -> bool {
        match self.lanes.get_mut(&pulled.key) {
            None => {
                self.lanes.insert(
                    pulled.key.clone(),
                    Lane {
                        partition: pulled.partition,
                        head: pulled.sequence,
                        out: true,
                        again: None,
                        parked: VecDeque::new(),
                    },
                );
                self.ready.push_back(pulled);
                true
            }
            Some(lane) if lane.head == pulled.sequence && !lane.out => {
                // The head's redelivery.
                lane.out = true;
                self.ready.push_back(pulled);
                true
            }
            Some(lane) if lane.head == pulled.sequence => {
                // The head again while it is out: kept for the head's nak.
                lane.again = Some(pulled);
                false
            }
            Some(lane) => {
                // Behind the head, in stream order; a message fetched twice is kept once.
                match lane
                    .parked
                    .binary_search_by_key(&pulled.sequence, |p| p.sequence)
                {
                    Ok(at) => lane.parked[at] = pulled,
                    Err(at) => lane.parked.insert(at, pulled),
                }
                false
            }
        }
    }

    /// The head `sequence` of `key` was settled: `done` (acked or dead-lettered) lets the next
    /// one out; otherwise (naked, dropped) the head comes again. True if one became ready.
    fn settled(&mut self, key: &str, sequence: u64, done: bool) -> bool {
        let Some(lane) = self.lanes.get_mut(key) else {
            return false;
        };
        if lane.head != sequence {
            return false;
        }
        if !done {
            // Naked or dropped: its redelivery goes out, or is awaited.
            match lane.again.take() {
                Some(again) if !self.closing.contains(&lane.partition) => {
                    self.ready.push_back(again);
                    return true;
                }
                again => {
                    lane.out = false;
                    if let Some(again) = again {
                        lane.parked.push_front(again);
                    }
                    return false;
                }
            }
        }
        lane.again = None;
        if self.closing.contains(&lane.partition) {
            lane.out = false;
            return false;
        }
        match lane.parked.pop_front() {
            Some(next) => {
                lane.head = next.sequence;
                lane.out = true;
                self.ready.push_back(next);
                true
            }
            None => {
                self.lanes.remove(key);
                false
            }
        }
    }

    /// The message `sequence` of `partition` was settled without being handed out (dead-lettered
    /// by the member past `max_deliver`): if it heads its key's lane, the key's next one may go.
    fn settled_at(&mut self, partition: u32, sequence: u64) -> bool {
        let key = self
            .lanes
            .iter()
            .find(|(_, lane)| lane.partition == partition && lane.head == sequence)
            .map(|(key, _)| key.clone());
        key.is_some_and(|key| self.settled(&key, sequence, true))
    }

    /// Stops handing out `partition`: what is ready but not taken goes back to its lane.
    fn close(&mut self, partition: u32) {
        self.closing.insert(partition);
        let ready = std::mem::take(&mut self.ready);
        for pulled in ready {
            if pulled.partition != partition {
                self.ready.push_back(pulled);
                continue;
            }
            if let Some(lane) = self.lanes.get_mut(&pulled.key) {
                lane.out = false;
                lane.parked.push_front(pulled);
            }
        }
    }

    /// Whether a delivery of `partition` is still out.
    fn has_out(&self, partition: u32) -> bool {
        self.lanes
            .values()
            .any(|lane| lane.partition == partition && lane.out)
    }

    /// Forgets `partition`: the messages fetched and not handed out, in stream order.
    fn drain(&mut self, partition: u32) -> Vec<Pulled> {
        self.closing.remove(&partition);
        self.ready.retain(|p| p.partition != partition);
        let mut drained = Vec::new();
        self.lanes.retain(|_, lane| {
            if lane.partition != partition {
                return true;
            }
            drained.extend(lane.parked.drain(..));
            false
        });
        drained.sort_unstable_by_key(|p| p.sequence);
        drained
    }

    /// The fetched messages whose ack-wait clock started before `before`: their clocks restart.
    fn stale(&mut self, before: tokio::time::Instant) -> Vec<Arc<NatsAcker>> {
        let now = tokio::time::Instant::now();
        let mut stale = Vec::new();
        let parked = self
            .lanes
            .values_mut()
            .flat_map(|lane| lane.parked.iter_mut());
        for pulled in parked.chain(self.ready.iter_mut()) {
            if pulled.touched < before {
                pulled.touched = now;
                stale.push(pulled.acker.clone());
            }
        }
        stale
    }
}

struct Held {
    revision: u64,
    puller: JoinHandle<()>,
    /// Set once the puller pulls: a lapsed lease's wait is over.
    pulling: Arc<AtomicBool>,
}

/// What a member of an ordered group shares with its tasks and its deliveries.
struct Shared {
    inner: Arc<Inner>,
    /// The lease bucket: made again when it is gone (a bucket in memory does not survive its
    /// server's restart).
    bucket: Mutex<kv::Store>,
    /// Set when the watch must be made again (it ended, or the bucket was made again).
    rewatch: AtomicBool,
    group: Arc<str>,
    /// The partitions' durable consumers and their names.
    consumers: Vec<(String, PullConsumer)>,
    floors: Vec<(String, u64)>,
    options: SubscribeOptions,
    /// `{group}`: the key prefix of the group's leases and members.
    prefix: String,
    member: String,
    gate: Mutex<Gate>,
    ready: Notify,
    held: Mutex<HashMap<u32, Held>>,
    /// The group's keys as the watch last saw them: the operation and when.
    view: Mutex<HashMap<String, (kv::Operation, tokio::time::Instant)>>,
}

/// A member of an ordered group on leased partitions.
pub(super) struct Leased {
    shared: Arc<Shared>,
    manager: JoinHandle<()>,
    stopped: bool,
}

impl Leased {
    pub(super) async fn join(
        inner: Arc<Inner>,
        group: &str,
        name: &str,
        consumers: Vec<(String, PullConsumer)>,
        floors: Vec<(String, u64)>,
        options: SubscribeOptions,
    ) -> Result<Self, BusError> {
        let kv = inner.lease_bucket().await?;
        let shared = Arc::new(Shared {
            inner,
            bucket: Mutex::new(kv),
            rewatch: AtomicBool::new(false),
            group: Arc::from(group),
            consumers,
            floors,
            options,
            prefix: key_token(name),
            member: ticketing_core::Id::new().to_string(),
            gate: Mutex::default(),
            ready: Notify::new(),
            held: Mutex::default(),
            view: Mutex::default(),
        });
        shared
            .kv()
            .put(shared.member_key(), Bytes::new())
            .await
            .map_err(|e| backend(format!("cannot join ordered group {group}: {e}")))?;
        let watch = shared
            .watch()
            .await
            .map_err(|e| backend(format!("cannot watch ordered group {group}'s leases: {e}")))?;
        let manager = tokio::spawn(manage(shared.clone(), watch));
        Ok(Leased {
            shared,
            manager,
            stopped: false,
        })
    }

    fn take(&self) -> Option<Delivery> {
        let pulled = lock(&self.shared.gate).ready.pop_front()?;
        let acker = GatedAcker {
            inner: pulled.acker,
            shared: self.shared.clone(),
            key: pulled.key,
            sequence: pulled.sequence,
            settled: AtomicBool::new(false),
        };
        Some(
            Delivery::with_acker(
                pulled.message,
                self.shared.group.clone(),
                pulled.attempt,
                acker,
            )
            .with_published(pulled.published),
        )
    }

    /// Stops this member: its pullers and manager end; its leases and presence go, so that
    /// other members take its partitions at their next tick (after the ack wait where it had
    /// deliveries out).
    fn stop(&mut self) -> Option<impl Future<Output = ()> + Send + 'static> {
        if std::mem::replace(&mut self.stopped, true) {
            return None;
        }
        self.manager.abort();
        let held: Vec<(u32, u64)> = lock(&self.shared.held)
            .drain()
            .map(|(partition, held)| {
                held.puller.abort();
                (partition, held.revision)
            })
            .collect();
        let shared = self.shared.clone();
        Some(async move {
            for (partition, revision) in held {
                let _ = shared
                    .kv()
                    .purge_expect_revision(shared.lease_key(partition), Some(revision))
                    .await;
            }
            let _ = shared.kv().purge(shared.member_key()).await;
        })
    }
}

#[async_trait]
impl Subscription for Leased {
    async fn next(&mut self) -> Option<Result<Delivery, BusError>> {
        loop {
            if let Some(delivery) = self.take() {
                return Some(Ok(delivery));
            }
            self.shared.ready.notified().await;
        }
    }

    fn try_next(&mut self) -> Option<Result<Delivery, BusError>> {
        self.take().map(Ok)
    }

    async fn close(mut self: Box<Self>) -> Result<(), BusError> {
        if let Some(leave) = self.stop() {
            leave.await;
        }
        Ok(())
    }
}

impl Drop for Leased {
    fn drop(&mut self) {
        if let (Some(leave), Ok(runtime)) = (self.stop(), tokio::runtime::Handle::try_current()) {
            runtime.spawn(leave);
        }
    }
}

/// Settles a delivery of a leased partition and moves its key's lane.
struct GatedAcker {
    inner: Arc<NatsAcker>,
    shared: Arc<Shared>,
    key: Box<str>,
    sequence: u64,
    settled: AtomicBool,
}

impl GatedAcker {
    fn finish(&self, done: bool) {
        self.settled.store(true, Ordering::Release);
        if lock(&self.shared.gate).settled(&self.key, self.sequence, done) {
            self.shared.ready.notify_one();
        }
    }
}

#[async_trait]
impl Acknowledger for GatedAcker {
    async fn ack(&self) -> Result<(), BusError> {
        let result = self.inner.ack().await;
        self.finish(result.is_ok());
        result
    }

    async fn nak(&self, delay: Option<Duration>) -> Result<(), BusError> {
        // The last delivery's nak dead-letters it: the key flows on.
        let last = self.inner.attempt >= self.inner.max_deliver;
        let result = self.inner.nak(delay).await;
        self.finish(last && result.is_ok());
        result
    }

    async fn term(&self, reason: &str) -> Result<(), BusError> {
        let result = self.inner.term(reason).await;
        self.finish(result.is_ok());
        result
    }

    async fn progress(&self) -> Result<(), BusError> {
        self.inner.progress().await
    }
}

impl Drop for GatedAcker {
    fn drop(&mut self) {
        // Dropped unsettled: the broker delivers it again after the ack wait.
        if !self.settled.load(Ordering::Acquire) {
            self.finish(false);
        }
    }
}

impl Shared {
    /// The lease bucket.
    fn kv(&self) -> kv::Store {
        lock(&self.bucket).clone()
    }

    /// A watch of the group's keys: their current entries, then every change.
    async fn watch(&self) -> Result<kv::Watch, kv::WatchError> {
        self.kv()
            .watch_with_history(format!("{}.>", self.prefix))
            .await
    }

    /// Takes in what the watch saw.
    fn saw(&self, entry: kv::Entry) {
        lock(&self.view).insert(entry.key, (entry.operation, tokio::time::Instant::now()));
    }

    fn lease_key(&self, partition: u32) -> String {
        format!("{}.p{partition}", self.prefix)
    }

    fn member_key(&self) -> String {
        format!("{}.m.{}", self.prefix, self.member)
    }

    fn partitions(&self) -> u32 {
        u32::try_from(self.consumers.len()).unwrap_or(u32::MAX)
    }

    /// Renews the held leases; a lease that cannot be renewed is lost (its partition stops).
    async fn renew(&self) {
        let held: Vec<(u32, u64)> = lock(&self.held)
            .iter()
            .map(|(p, h)| (*p, h.revision))
            .collect();
        for (partition, revision) in held {
            let renewed = self
                .kv()
                .update(
                    self.lease_key(partition),
                    Bytes::from(self.member.clone()),
                    revision,
                )
                .await;
            match renewed {
                Ok(revision) => {
                    if let Some(held) = lock(&self.held).get_mut(&partition) {
                        held.revision = revision;
                    }
                }
                Err(error) => {
                    tracing::warn!(group = %self.group, partition, %error, "lost a partition's lease");
                    if let Some(held) = lock(&self.held).remove(&partition) {
                        held.puller.abort();
                    }
                    lock(&self.gate).drain(partition);
                }
            }
        }
    }

    /// The group's members and the partitions someone holds: the keys put within the lease
    /// time, as the watch saw them.
    fn census(&self) -> (u32, HashSet<u32>) {
        let members_prefix = format!("{}.m.", self.prefix);
        let lease_prefix = format!("{}.p", self.prefix);
        let live = tokio::time::Instant::now() - LEASE_TTL;
        let (mut members, mut taken) = (0u32, HashSet::new());
        let mut view = lock(&self.view);
        // What lapsed long ago is forgotten.
        view.retain(|_, (_, at)| *at + LEASE_TTL * 4 > live);
        for (key, (operation, at)) in view.iter() {
            if *operation != kv::Operation::Put || *at < live {
                continue;
            }
            if key.starts_with(&members_prefix) {
                members += 1;
            } else if let Some(p) = key.strip_prefix(&lease_prefix) {
                if let Ok(p) = p.parse::<u32>() {
                    taken.insert(p);
                }
            }
        }
        (members.max(1), taken)
    }

    /// Takes the lease of `partition`, free as the watch saw it: `Some(clean)`, clean when its
    /// last holder gave it up (deleted it) rather than let it lapse.
    async fn try_take(&self, partition: u32) -> Option<(u64, bool)> {
        let key = self.lease_key(partition);
        let clean = matches!(lock(&self.view).get(&key), Some((kv::Operation::Delete, _)));
        let revision = self
            .kv()
            .create(key, Bytes::from(self.member.clone()))
            .await
            .ok()?;
        Some((revision, clean))
    }

    /// One round: presence, leases, and the share of the partitions.
    async fn round(self: &Arc<Self>, start: u32) {
        if let Err(error) = self.kv().put(self.member_key(), Bytes::new()).await {
            tracing::warn!(group = %self.group, %error, "cannot renew the group membership");
            // The bucket may be gone (a server restarted with it in memory): make it again.
            // The leases it held are lost with it; the next round's renewals find that out.
            if let Ok(bucket) = self.inner.lease_bucket().await {
                if bucket.put(self.member_key(), Bytes::new()).await.is_ok() {
                    *lock(&self.bucket) = bucket;
                    self.rewatch.store(true, Ordering::Release);
                }
            }
            return;
        }
        self.renew().await;
        let (members, taken) = self.census();
        let partitions = self.partitions();
        let share = partitions.div_ceil(members) as usize;
        let holding: Vec<u32> = {
            let held = lock(&self.held);
            let mut holding: Vec<u32> = held.keys().copied().collect();
            holding.sort_unstable();
            holding
        };
        if holding.len() > share {
            for &partition in holding.iter().rev().take(holding.len() - share) {
                self.give_up(partition);
            }
            return;
        }
        let mut want = share - holding.len();
        for k in 0..partitions {
            if want == 0 {
                break;
            }
            let partition = (start + k) % partitions;
            if taken.contains(&partition) || holding.contains(&partition) {
                continue;
            }
            if let Some((revision, clean)) = self.try_take(partition).await {
                let pulling = Arc::new(AtomicBool::new(false));
                let puller = tokio::spawn(pull(self.clone(), partition, clean, pulling.clone()));
                let held = Held {
                    revision,
                    puller,
                    pulling,
                };
                lock(&self.held).insert(partition, held);
                tracing::debug!(group = %self.group, partition, clean, "took a partition");
                want -= 1;
            }
        }
    }

    /// Gives `partition` up cleanly: stop pulling, let what is out settle, nak what was
    /// fetched and not handed out, delete the lease.
    fn give_up(self: &Arc<Self>, partition: u32) {
        let Some(held) = lock(&self.held).remove(&partition) else {
            return;
        };
        held.puller.abort();
        let shared = self.clone();
        if !held.pulling.load(Ordering::Acquire) {
            // Taken after a lapse and still waiting out the old holder's deliveries: the next
            // holder must wait them out too, so the lease goes as if it had lapsed.
            tokio::spawn(async move {
                let _ = shared
                    .kv()
                    .purge_expect_revision(shared.lease_key(partition), Some(held.revision))
                    .await;
            });
            return;
        }
        lock(&self.gate).close(partition);
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + shared.options.ack_wait;
            while lock(&shared.gate).has_out(partition) && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let fetched = lock(&shared.gate).drain(partition);
            for pulled in fetched {
                let _ = pulled.acker.acker.ack_with(AckKind::Nak(None)).await;
            }
            let _ = shared
                .kv()
                .delete_expect_revision(shared.lease_key(partition), Some(held.revision))
                .await;
            tracing::debug!(group = %shared.group, partition, "gave a partition up");
        });
    }
}

/// Keeps a member's presence and leases, and its fetched messages' ack-wait clocks.
async fn manage(shared: Arc<Shared>, mut watch: kv::Watch) {
    // The view fills while the member waits for others joining with it.
    let joined = tokio::time::Instant::now() + JOIN_WINDOW;
    while let Ok(Some(entry)) = tokio::time::timeout_at(joined, watch.next()).await {
        if let Ok(entry) = entry {
            shared.saw(entry);
        }
    }
    let start = partition::partition(&shared.member, shared.partitions());
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let touch_every = (shared.options.ack_wait / 3).max(Duration::from_millis(50));
    let mut touch = tokio::time::interval(touch_every);
    touch.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                shared.round(start).await;
                if shared.rewatch.swap(false, Ordering::AcqRel) {
                    match shared.watch().await {
                        Ok(again) => watch = again,
                        Err(error) => {
                            shared.rewatch.store(true, Ordering::Release);
                            tracing::warn!(group = %shared.group, %error, "cannot watch the group's leases");
                        }
                    }
                }
            }
            entry = watch.next() => match entry {
                Some(Ok(entry)) => shared.saw(entry),
                Some(Err(error)) => {
                    tracing::debug!(group = %shared.group, %error, "the lease watch failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                // The watch ended (the bucket went, or the server): the next round watches again.
                None => shared.rewatch.store(true, Ordering::Release),
            },
            _ = touch.tick() => {
                let before = tokio::time::Instant::now() - touch_every;
                let stale = lock(&shared.gate).stale(before);
                for acker in stale {
                    let _ = acker.progress().await;
                }
            }
        }
    }
}

/// Fetches a held partition into the member's lanes.
async fn pull(shared: Arc<Shared>, partition: u32, clean: bool, pulling: Arc<AtomicBool>) {
    let (name, consumer) = shared.consumers[partition as usize].clone();
    if !clean {
        // The lease lapsed: what its holder had out comes again after the ack wait, and must
        // come before the later events of its keys.
        let pending = shared
            .inner
            .events
            .consumer_info(&name)
            .await
            .map_or(1, |info| info.num_ack_pending);
        if pending > 0 {
            tokio::time::sleep(shared.options.ack_wait + Duration::from_millis(250)).await;
        }
    }
    pulling.store(true, Ordering::Release);
    let mut member = NatsSubscription::new(
        shared.inner.clone(),
        consumer,
        &shared.group,
        shared.options,
        shared.floors.clone(),
    );
    let mut failures = 0u32;
    while let Some(next) = member.pull().await {
        let message = match next {
            Ok(message) => message,
            Err(error) => {
                failures = failures.saturating_add(1);
                if failures == 1 || failures.is_power_of_two() {
                    tracing::warn!(%error, failures, "a partition's pull failed; retrying");
                }
                let pause = Duration::from_millis(50)
                    .saturating_mul(failures.min(40))
                    .min(Duration::from_secs(2));
                tokio::time::sleep(pause).await;
                continue;
            }
        };
        failures = 0;
        let sequence = message.info().map_or(0, |info| info.stream_sequence);
        match member.accept_parts(message).await {
            Ok(Some(accepted)) => {
                // The ordering key as a subject token; a message without one is its own key.
                let key = partition::key_of(&accepted.message.headers).map_or_else(
                    || format!("#{sequence}").into(),
                    |k| partition::token(k).into(),
                );
                let pulled = Pulled {
                    partition,
                    key,
                    sequence,
                    message: accepted.message,
                    acker: Arc::new(accepted.acker),
                    attempt: accepted.attempt,
                    published: accepted.published,
                    touched: tokio::time::Instant::now(),
                };
                if lock(&shared.gate).admit(pulled) {
                    shared.ready.notify_one();
                }
            }
            // Acked unseen, or dead-lettered past `max_deliver`: its key flows on.
            Ok(None) => {
                if lock(&shared.gate).settled_at(partition, sequence) {
                    shared.ready.notify_one();
                }
            }
            Err(error) => tracing::warn!(%error, "cannot take a partition's message"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_names_are_what_the_bucket_accepts() {
        assert_eq!(bucket_of("TICKETING"), "TICKETING_LEASES");
        assert_eq!(bucket_of("a.b c"), "a_b_c_LEASES");
        assert_eq!(
            key_token("orders--ticket:created"),
            "orders--ticket=3Acreated"
        );
        assert_eq!(key_token("g.x"), "g=2Ex");
    }
}
