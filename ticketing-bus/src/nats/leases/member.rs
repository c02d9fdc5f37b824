//! What a member does with its leases: the watch of the group's keys, the rounds that renew,
//! take and give up partitions, and the pullers of the partitions it holds.

#[allow(clippy::wildcard_imports)]
use super::*;

impl Shared {
    /// The lease bucket.
    pub(super) fn kv(&self) -> kv::Store {
        lock(&self.bucket).clone()
    }

    /// A watch of the group's keys: their current entries, then every change.
    pub(super) async fn watch(&self) -> Result<kv::Watch, kv::WatchError> {
        self.kv()
            .watch_with_history(format!("{}.>", self.prefix))
            .await
    }

    /// Takes in what the watch saw.
    pub(super) fn saw(&self, entry: kv::Entry) {
        lock(&self.view).insert(entry.key, (entry.operation, tokio::time::Instant::now()));
    }

    pub(super) fn lease_key(&self, partition: u32) -> String {
        format!("{}.p{partition}", self.prefix)
    }

    pub(super) fn member_key(&self) -> String {
        format!("{}.m.{}", self.prefix, self.member)
    }

    pub(super) fn partitions(&self) -> u32 {
        u32::try_from(self.consumers.len()).unwrap_or(u32::MAX)
    }

    /// Renews the held leases; a lease that cannot be renewed is lost (its partition stops).
    pub(super) async fn renew(&self) {
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
    pub(super) fn census(&self) -> (u32, HashSet<u32>) {
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
    pub(super) async fn try_take(&self, partition: u32) -> Option<(u64, bool)> {
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
    pub(super) async fn round(self: &Arc<Self>, start: u32) {
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
    pub(super) fn give_up(self: &Arc<Self>, partition: u32) {
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
pub(super) async fn manage(shared: Arc<Shared>, mut watch: kv::Watch) {
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
pub(super) async fn pull(
    shared: Arc<Shared>,
    partition: u32,
    clean: bool,
    pulling: Arc<AtomicBool>,
) {
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
