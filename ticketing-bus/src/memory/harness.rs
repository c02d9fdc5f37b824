//! What tests look at: the published messages and events, each group's stats, and a wait
//! until nothing is in flight or due.

#[allow(clippy::wildcard_imports)]
use super::*;

impl InMemoryBus {
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

    /// What the queue group `group` did on `subject`, if it exists. For an ordered group
    /// ([`Bus::subscribe_ordered`]), what it did on all its subjects.
    pub fn group_stats(&self, subject: &str, group: &str) -> Option<GroupStats> {
        let state = self.shared.lock();
        let log = *state.log_ids.get(subject)?;
        if let Some(&id) = state.consumer_ids.get(&(log, Arc::from(group))) {
            return Some(state.stats(id));
        }
        let id = [
            // An ordered group on this subject alone, else on several.
            ticketing_core::bus::ordered_group_name(group, &[subject]),
            group.to_owned(),
        ]
        .iter()
        .find_map(|name| state.ordered_ids.get(name.as_str()))?;
        state.ordered[*id]
            .logs
            .contains(&log)
            .then(|| state.ordered_stats(*id))
    }

    /// What the queue group `group` did with events of type `E`: its deliveries, acks,
    /// retries and dead letters on `E`'s subject; all zero when it never subscribed to them.
    ///
    /// ```
    /// # use ticketing_core::Event;
    /// # #[derive(serde::Serialize, serde::Deserialize)] struct Shipped;
    /// # impl Event for Shipped { const SUBJECT: &'static str = "parcel:shipped";
    /// #   fn message_id(&self) -> String { "s".into() } }
    /// use ticketing_bus::memory::InMemoryBus;
    ///
    /// let bus = InMemoryBus::new();
    /// let stats = bus.stats_of::<Shipped>("notifications");
    /// assert_eq!((stats.acked, stats.dead_lettered), (0, 0));
    /// ```
    pub fn stats_of<E: Event>(&self, group: &str) -> GroupStats {
        self.group_stats(E::SUBJECT, group).unwrap_or_default()
    }

    /// Every queue group as `(subject, group, stats)`; an ordered group once, with its
    /// subjects joined by `,`.
    pub fn groups(&self) -> Vec<(String, String, GroupStats)> {
        let state = self.shared.lock();
        let plain = (0..state.consumers.len()).map(|id| {
            let c = &state.consumers[id];
            (
                state.logs[c.log].subject.to_string(),
                c.group.to_string(),
                state.stats(id),
            )
        });
        let ordered = (0..state.ordered.len()).map(|id| {
            let o = &state.ordered[id];
            let subjects: Vec<&str> = o.logs.iter().map(|&l| &*state.logs[l].subject).collect();
            (
                subjects.join(","),
                o.group.to_string(),
                state.ordered_stats(id),
            )
        });
        plain.chain(ordered).collect()
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

    /// Waits until every outbox of `outboxes` is empty and the bus has settled, both at once:
    /// the whole system at rest, relays included. A listener may commit new events while the
    /// bus settles, and a relay may publish while it does, so it checks both again until
    /// neither has work. An outbox that cannot be read counts as not empty. On a paused clock
    /// it takes no real time.
    pub async fn settled_with(&self, outboxes: &[&dyn Outbox]) {
        let empty = || async {
            for outbox in outboxes {
                match outbox.pending(1).await {
                    Ok(pending) if pending.is_empty() => {}
                    _ => return false,
                }
            }
            true
        };
        loop {
            while !empty().await {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            self.settled().await;
            if empty().await {
                return;
            }
        }
    }

    /// Fault injection.
    pub fn faults(&self) -> Faults<'_> {
        Faults { bus: self }
    }
}
