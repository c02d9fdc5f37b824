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
mod gate;
mod member;

use gate::{Gate, Pulled};
use member::manage;

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
