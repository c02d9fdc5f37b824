//! Queue groups: delivery to members, ack wait, nak with delay, term, `max_deliver` and dead
//! letters, `max_ack_pending`; the subscription and the acknowledger handed to members.

#[allow(clippy::wildcard_imports)]
use super::*;

pub(super) enum Taken {
    Delivery(Arc<Message>, u32),
    Wait(Option<Instant>),
}

impl State {
    /// When the message at `sequence` of consumer `id`'s subject was stored, if still retained.
    pub(super) fn published(&self, id: ConsumerId, sequence: u64) -> Option<Instant> {
        self.logs[self.consumers[id].log].published(sequence)
    }

    pub(super) fn join(
        &mut self,
        subject: &str,
        group: &str,
        options: SubscribeOptions,
    ) -> ConsumerId {
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
                    pending: FastMap::default(),
                    deadlines: Deadlines::default(),
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

    pub(super) fn take(&mut self, id: ConsumerId, now: Instant) -> Taken {
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
                    let held = if log.held.is_empty() {
                        None
                    } else {
                        log.held.get(&message.sequence)
                    };
                    match held {
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

    pub(super) fn deliver(
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

    pub(super) fn expire_pending(&mut self, id: ConsumerId, now: Instant) {
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

    pub(super) fn dead_letter(
        &mut self,
        id: ConsumerId,
        message: Arc<Message>,
        attempts: u32,
        reason: String,
    ) {
        let consumer = &mut self.consumers[id];
        consumer.stats.dead_lettered += 1;
        let group = consumer.group.to_string();
        self.record_dead_letter(Target::Plain(id), group, message, attempts, reason);
    }

    /// Keeps a dead letter of `group` (whose consumer is `target`), dropping the oldest past
    /// the limit.
    pub(super) fn record_dead_letter(
        &mut self,
        target: Target,
        group: String,
        message: Arc<Message>,
        attempts: u32,
        reason: String,
    ) {
        tracing::warn!(
            subject = %message.subject,
            group = %group,
            sequence = message.sequence,
            attempts,
            %reason,
            "message dead-lettered"
        );
        self.next_dead_letter += 1;
        let letter = DeadLetter {
            id: self.next_dead_letter,
            message: Message::clone(&message),
            group,
            attempts,
            reason,
            at: SystemTime::now(),
        };
        self.dead_letters
            .insert(letter.id, DeadEntry { target, letter });
        while self.dead_letters.len() > self.config.max_dead_letters {
            self.dead_letters.pop_first();
        }
    }

    pub(super) fn settle(&mut self, id: ConsumerId, sequence: u64, attempt: u32, how: Settle<'_>) {
        let consumer = &mut self.consumers[id];
        let was_full =
            consumer.pending.len() + consumer.due.len() >= consumer.options.max_ack_pending;
        let pending = match how {
            // A late ack of an earlier delivery still acks the message, as in JetStream: one
            // lookup, the removal.
            Settle::Ack => consumer.pending.remove(&sequence),
            Settle::Progress | Settle::Nak(_) | Settle::Term(_) => {
                let Some(pending) = consumer.pending.get_mut(&sequence) else {
                    // Already acked, terminated, or expired and handed out again.
                    return;
                };
                if pending.attempt != attempt {
                    // An earlier delivery's: the current one settles it.
                    return;
                }
                if let Settle::Progress = how {
                    let old = pending.deadline;
                    pending.deadline = Instant::now() + consumer.options.ack_wait;
                    let new = pending.deadline;
                    consumer.deadlines.remove(&(old, sequence));
                    consumer.deadlines.insert((new, sequence));
                    return;
                }
                consumer.pending.remove(&sequence)
            }
        };
        let Some(pending) = pending else {
            // Already acked, terminated, or expired and handed out again.
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

    pub(super) fn stats(&self, id: ConsumerId) -> GroupStats {
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
    pub(super) fn unsettled(&self, except: &[&str]) -> Option<Option<Instant>> {
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
        let (ordered_busy, ordered_wake) = self.ordered_unsettled(except);
        if let Some(at) = ordered_wake {
            wake = Some(wake.map_or(at, |w: Instant| w.min(at)));
        }
        (busy || ordered_busy).then_some(wake)
    }
}

pub(super) enum Settle<'a> {
    Ack,
    Nak(Duration),
    Term(&'a str),
    Progress,
}

pub(super) struct InMemorySubscription {
    pub(super) shared: Arc<Shared>,
    pub(super) target: Target,
    pub(super) group: Arc<str>,
    pub(super) notify: Arc<Notify>,
    /// Counted in the consumer's sleepers.
    pub(super) sleeping: bool,
    /// The last delivery's acknowledger, filled in again for the next delivery once that one
    /// is done with it: no allocation per delivery for a listener that keeps up.
    pub(super) spare: Option<Arc<InMemoryAcker>>,
}

/// What a take found: a delivery (message, attempt, publish time, where to settle it), or
/// the time something is next due.
type Took = Result<(Arc<Message>, u32, Option<Instant>, At), Option<Instant>>;

impl State {
    fn sleepers(&mut self, target: Target) -> &mut usize {
        match target {
            Target::Plain(id) => &mut self.consumers[id].sleepers,
            Target::Ordered(id) => &mut self.ordered[id].sleepers,
        }
    }

    fn take_for(&mut self, target: Target, now: Instant) -> Took {
        match target {
            Target::Plain(id) => match self.take(id, now) {
                Taken::Delivery(message, attempt) => {
                    let published = self.published(id, message.sequence);
                    let at = At::Plain {
                        consumer: id,
                        sequence: message.sequence,
                    };
                    Ok((message, attempt, published, at))
                }
                Taken::Wait(wake) => Err(wake),
            },
            Target::Ordered(id) => {
                self.take_ordered(id, now)
                    .map(|(message, attempt, published, place)| {
                        let at = At::Ordered(place, message.clone());
                        (message, attempt, Some(published), at)
                    })
            }
        }
    }
}

impl InMemorySubscription {
    pub(super) fn try_take(&mut self) -> Option<Result<Delivery, BusError>> {
        // The clock is read before the lock is taken, not while holding it.
        let now = Instant::now();
        let mut state = self.shared.lock();
        if self.sleeping {
            *state.sleepers(self.target) -= 1;
            self.sleeping = false;
        }
        if let (true, Target::Plain(id)) = (state.faults.active, self.target) {
            let subject = state.logs[state.consumers[id].log].subject.clone();
            if FaultState::take(&mut state.faults.failed_pulls, &subject) {
                state.faults.refresh();
                return Some(Err(BusError::Injected(format!(
                    "a pull on {subject} failed"
                ))));
            }
        }
        let took = state.take_for(self.target, now).ok()?;
        drop(state);
        Some(Ok(self.delivery(took, now)))
    }

    pub(super) fn take_or_sleep(&mut self) -> Result<Delivery, Option<Instant>> {
        let now = Instant::now();
        let mut state = self.shared.lock();
        match state.take_for(self.target, now) {
            Ok(took) => {
                drop(state);
                Ok(self.delivery(took, now))
            }
            Err(wake) => {
                *state.sleepers(self.target) += 1;
                self.sleeping = true;
                Err(wake)
            }
        }
    }

    /// The acknowledger of the next delivery: the spare one filled in again when the last
    /// delivery is done with it, else a new one (kept as the spare).
    fn acker(&mut self, at: At, attempt: u32) -> Arc<InMemoryAcker> {
        if let Some(spare) = &mut self.spare {
            if let Some(acker) = Arc::get_mut(spare) {
                acker.at = at;
                acker.attempt = attempt;
                return spare.clone();
            }
        }
        let acker = Arc::new(InMemoryAcker {
            shared: self.shared.clone(),
            at,
            attempt,
        });
        self.spare = Some(acker.clone());
        acker
    }

    fn delivery(
        &mut self,
        took: (Arc<Message>, u32, Option<Instant>, At),
        now: Instant,
    ) -> Delivery {
        let (message, attempt, published, at) = took;
        let acker = self.acker(at, attempt);
        let delivery = Delivery::with_shared_acker(message, self.group.clone(), attempt, acker)
            .with_taken(now);
        match published {
            Some(at) => delivery.with_published(at),
            None => delivery,
        }
    }
}

#[async_trait]
impl Subscription for InMemorySubscription {
    async fn next(&mut self) -> Option<Result<Delivery, BusError>> {
        loop {
            // Fast path: something is ready, no wake-up registration needed.
            if let Some(taken) = self.try_take() {
                return Some(taken);
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

    fn try_next(&mut self) -> Option<Result<Delivery, BusError>> {
        self.try_take()
    }

    async fn close(self: Box<Self>) -> Result<(), BusError> {
        // Nothing is prefetched; leaving is done by Drop.
        Ok(())
    }
}

impl Drop for InMemorySubscription {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        if self.sleeping {
            *state.sleepers(self.target) -= 1;
        }
        match self.target {
            Target::Plain(id) => state.consumers[id].members -= 1,
            Target::Ordered(id) => state.ordered[id].members -= 1,
        }
        drop(state);
        self.shared.changed();
    }
}

/// Where a delivery is settled: a plain group's pending message, or an ordered group's
/// partition (one of its keys' messages out, which it must still be).
pub(super) enum At {
    Plain { consumer: ConsumerId, sequence: u64 },
    Ordered(super::ordered::Place, Arc<Message>),
}

pub(super) struct InMemoryAcker {
    shared: Arc<Shared>,
    at: At,
    attempt: u32,
}

impl InMemoryAcker {
    pub(super) fn settle(&self, how: Settle<'_>) {
        let mut state = self.shared.lock();
        if matches!(how, Settle::Ack) && state.faults.active {
            let subject: Arc<str> = match &self.at {
                At::Plain { consumer, .. } => {
                    state.logs[state.consumers[*consumer].log].subject.clone()
                }
                At::Ordered(_, message) => Arc::from(message.subject.as_str()),
            };
            if FaultState::take(&mut state.faults.dropped_acks, &subject) {
                state.faults.refresh();
                return;
            }
        }
        match &self.at {
            At::Plain { consumer, sequence } => {
                state.settle(*consumer, *sequence, self.attempt, how);
            }
            At::Ordered(place, message) => {
                state.settle_ordered(*place, message, self.attempt, how);
            }
        }
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

    fn try_ack(&self) -> Option<Result<(), BusError>> {
        self.settle(Settle::Ack);
        Some(Ok(()))
    }
}
