//! Ordered groups ([`Bus::subscribe_ordered`]): one consumer of several subjects in
//! partitions, as the NATS backend's partitioned consumers behave. Each message goes, in
//! publish order across the subjects, to the partition of its ordering key
//! ([`ticketing_core::partition`]); a partition hands out one message per key at a time, the
//! key's next only once that one is acked or dead-lettered, so a nak or a member's death holds
//! the key (not the partition's other keys) until the redelivery is settled, as on NATS, where
//! one member holds a partition and hands its keys out in parallel. Keys run in parallel
//! across members.

#[allow(clippy::wildcard_imports)]
use super::*;

use std::borrow::Cow;

use super::consumer::Settle;
use ticketing_core::partition;

pub(super) type OrderedId = usize;

pub(super) struct Ordered {
    pub(super) group: Arc<str>,
    pub(super) logs: Vec<LogId>,
    pub(super) options: SubscribeOptions,
    pub(super) notify: Arc<Notify>,
    pub(super) sleepers: usize,
    pub(super) members: usize,
    partitions: Vec<Partition>,
    /// The partition the next take looks at first, so that a busy one does not starve others.
    next: usize,
    pub(super) stats: GroupStats,
}

#[derive(Default)]
struct Partition {
    queue: VecDeque<(Arc<Message>, Instant, Box<str>)>,
    /// One per key with a message out.
    slots: Vec<Slot>,
}

/// A key's one message out: delivered and unsettled, or waiting for redelivery.
struct Slot {
    key: Box<str>,
    message: Arc<Message>,
    published: Instant,
    attempt: u32,
    /// Delivered, unsettled until then; or (`due`) naked or timed out, redelivered from then.
    at: Instant,
    due: bool,
}

impl Ordered {
    pub(super) fn wake(&self) {
        if self.sleepers > 0 {
            self.notify.notify_waiters();
        }
    }

    fn push(&mut self, message: Arc<Message>, published: Instant) {
        let count = u32::try_from(self.partitions.len()).unwrap_or(u32::MAX);
        let key = partition::key_of(&message.headers)
            .map(Cow::Borrowed)
            .unwrap_or_else(|| Cow::Owned(format!("{}:{}", message.subject, message.sequence)));
        let index = partition::partition(&key, count) as usize;
        let key = partition::token(&key).into();
        self.partitions[index]
            .queue
            .push_back((message, published, key));
    }

    /// The time something is next due, and whether anything is in flight or queued.
    fn next_due(&self) -> (Option<Instant>, bool) {
        let mut busy = false;
        let mut wake: Option<Instant> = None;
        for partition in &self.partitions {
            busy |= !partition.slots.is_empty() || !partition.queue.is_empty();
            for slot in &partition.slots {
                wake = Some(wake.map_or(slot.at, |w| w.min(slot.at)));
            }
        }
        (wake, busy)
    }
}

impl Partition {
    /// The partition's next delivery at `now`: a redelivery due, else the first queued message
    /// of a key with nothing out.
    fn take(&mut self, now: Instant, ack_wait: Duration) -> Option<(Arc<Message>, u32, Instant)> {
        if let Some(slot) = self.slots.iter_mut().find(|s| s.due && s.at <= now) {
            slot.attempt += 1;
            slot.due = false;
            slot.at = now + ack_wait;
            return Some((slot.message.clone(), slot.attempt, slot.published));
        }
        let slots = &self.slots;
        let at = self
            .queue
            .iter()
            .position(|(_, _, key)| !slots.iter().any(|s| s.key == *key))?;
        let (message, published, key) = self.queue.remove(at)?;
        self.slots.push(Slot {
            key,
            message: message.clone(),
            published,
            attempt: 1,
            at: now + ack_wait,
            due: false,
        });
        Some((message, 1, published))
    }

    fn slot(&mut self, message: &Arc<Message>) -> Option<&mut Slot> {
        self.slots
            .iter_mut()
            .find(|s| Arc::ptr_eq(&s.message, message))
    }

    fn remove(&mut self, message: &Arc<Message>) -> Option<Slot> {
        let at = self
            .slots
            .iter()
            .position(|s| Arc::ptr_eq(&s.message, message))?;
        Some(self.slots.swap_remove(at))
    }
}

/// Where a delivery of an ordered group came from, for its acknowledger.
#[derive(Clone, Copy)]
pub(super) struct Place {
    pub(super) group: OrderedId,
    pub(super) partition: usize,
}

impl State {
    pub(super) fn join_ordered(
        &mut self,
        subjects: &[&str],
        group: &str,
        options: SubscribeOptions,
    ) -> OrderedId {
        let name = ticketing_core::bus::ordered_group_name(group, subjects);
        let id = match self.ordered_ids.get(name.as_str()) {
            Some(&id) => id,
            None => {
                let logs: Vec<LogId> = subjects.iter().map(|s| self.log_id(s)).collect();
                let id = self.ordered.len();
                let count = self.config.partitions.max(1) as usize;
                let mut ordered = Ordered {
                    group: Arc::from(group),
                    logs: logs.clone(),
                    options,
                    notify: Arc::new(Notify::new()),
                    sleepers: 0,
                    members: 0,
                    partitions: (0..count).map(|_| Partition::default()).collect(),
                    next: 0,
                    stats: GroupStats::default(),
                };
                // A new group starts from the first retained message, in publish order across
                // its subjects.
                let mut retained: Vec<(u64, Arc<Message>, Instant)> = Vec::new();
                for &log in &logs {
                    let log = &self.logs[log];
                    for (index, message) in log.messages.iter().enumerate() {
                        retained.push((log.stamps[index], message.clone(), log.published[index]));
                    }
                }
                retained.sort_unstable_by_key(|(stamp, _, _)| *stamp);
                for (_, message, published) in retained {
                    ordered.push(message, published);
                }
                for &log in &logs {
                    self.logs[log].ordered.push(id);
                }
                self.ordered.push(ordered);
                self.ordered_ids.insert(Arc::from(name), id);
                id
            }
        };
        // Subjects added to a group take their messages from now on, as a NATS consumer
        // whose filter grows.
        for subject in subjects {
            let log = self.log_id(subject);
            if !self.ordered[id].logs.contains(&log) {
                self.ordered[id].logs.push(log);
                self.logs[log].ordered.push(id);
            }
        }
        let ordered = &mut self.ordered[id];
        ordered.options = options;
        ordered.members += 1;
        id
    }

    /// Routes a message just stored in `log` to the ordered groups on it.
    pub(super) fn route_ordered(&mut self, log: LogId, message: &Arc<Message>, at: Instant) {
        for &id in &self.logs[log].ordered {
            let ordered = &mut self.ordered[id];
            ordered.push(message.clone(), at);
            ordered.wake();
        }
    }

    /// The next delivery of ordered group `id` due at `now`: a redelivery, or a partition's
    /// next message of a key once the key's one before it is settled.
    pub(super) fn take_ordered(
        &mut self,
        id: OrderedId,
        now: Instant,
    ) -> Result<(Arc<Message>, u32, Instant, Place), Option<Instant>> {
        self.expire_ordered(id, now);
        let ordered = &mut self.ordered[id];
        let count = ordered.partitions.len();
        for k in 0..count {
            let index = (ordered.next + k) % count;
            let ack_wait = ordered.options.ack_wait;
            let Some(delivered) = ordered.partitions[index].take(now, ack_wait) else {
                continue;
            };
            ordered.next = index + 1;
            ordered.stats.delivered += 1;
            if delivered.1 > 1 {
                ordered.stats.redelivered += 1;
            }
            let place = Place {
                group: id,
                partition: index,
            };
            return Ok((delivered.0, delivered.1, delivered.2, place));
        }
        Err(ordered.next_due().0)
    }

    /// Deliveries whose ack wait ran out become due again, or dead letters past
    /// `max_deliver`.
    pub(super) fn expire_ordered(&mut self, id: OrderedId, now: Instant) {
        let max_deliver = self.ordered[id].options.max_deliver;
        for index in 0..self.ordered[id].partitions.len() {
            let mut ended = Vec::new();
            let ordered = &mut self.ordered[id];
            for slot in &mut ordered.partitions[index].slots {
                if slot.due || slot.at > now {
                    continue;
                }
                ordered.stats.ack_timeouts += 1;
                if slot.attempt >= max_deliver {
                    ended.push((slot.message.clone(), slot.attempt));
                } else {
                    slot.due = true;
                    slot.at = now;
                }
            }
            for (message, attempt) in ended {
                let reason =
                    format!("delivered {attempt} times without an ack (max_deliver {max_deliver})");
                let place = Place {
                    group: id,
                    partition: index,
                };
                self.end_ordered(place, &message, reason);
            }
        }
    }

    /// Dead-letters a key's message and lets the key's next one flow.
    fn end_ordered(&mut self, place: Place, message: &Arc<Message>, reason: String) {
        let ordered = &mut self.ordered[place.group];
        let Some(slot) = ordered.partitions[place.partition].remove(message) else {
            return;
        };
        ordered.stats.dead_lettered += 1;
        ordered.wake();
        let group = self.ordered[place.group].group.to_string();
        self.record_dead_letter(
            Target::Ordered(place.group),
            group,
            slot.message,
            slot.attempt,
            reason,
        );
    }

    pub(super) fn settle_ordered(
        &mut self,
        place: Place,
        message: &Arc<Message>,
        attempt: u32,
        how: Settle<'_>,
    ) {
        let ordered = &mut self.ordered[place.group];
        let (ack_wait, max_deliver) = (ordered.options.ack_wait, ordered.options.max_deliver);
        let Some(slot) = ordered.partitions[place.partition].slot(message) else {
            // Already settled, or dead-lettered.
            return;
        };
        let current = slot.attempt == attempt && !slot.due;
        match how {
            Settle::Progress if current => slot.at = Instant::now() + ack_wait,
            Settle::Progress => {}
            // A late ack of an earlier delivery still acks the message, as in JetStream.
            Settle::Ack => {
                ordered.partitions[place.partition].remove(message);
                ordered.stats.acked += 1;
                ordered.wake();
            }
            Settle::Nak(_) | Settle::Term(_) if !current => {}
            Settle::Nak(_) if attempt >= max_deliver => {
                ordered.stats.nacked += 1;
                let reason = format!("nacked on delivery {attempt} of max_deliver {max_deliver}");
                self.end_ordered(place, message, reason);
            }
            Settle::Nak(delay) => {
                ordered.stats.nacked += 1;
                slot.due = true;
                slot.at = Instant::now() + delay;
                ordered.wake();
            }
            Settle::Term(reason) => self.end_ordered(place, message, reason.to_owned()),
        }
    }

    /// A dead letter of ordered group `id` delivered again: at the end of its partition.
    pub(super) fn redrive_ordered(&mut self, id: OrderedId, message: Message) {
        let ordered = &mut self.ordered[id];
        ordered.push(Arc::new(message), Instant::now());
        ordered.wake();
    }

    pub(super) fn ordered_stats(&self, id: OrderedId) -> GroupStats {
        let ordered = &self.ordered[id];
        let mut stats = GroupStats {
            members: ordered.members as u64,
            ..ordered.stats
        };
        for partition in &ordered.partitions {
            stats.undelivered += partition.queue.len() as u64;
            for slot in &partition.slots {
                if slot.due {
                    stats.waiting += 1;
                } else {
                    stats.in_flight += 1;
                }
            }
        }
        stats
    }

    /// Whether ordered groups with members (but those in `except`) have work, and when
    /// something is next due: folded into [`State::unsettled`].
    pub(super) fn ordered_unsettled(&self, except: &[&str]) -> (bool, Option<Instant>) {
        let mut busy = false;
        let mut wake: Option<Instant> = None;
        for ordered in self
            .ordered
            .iter()
            .filter(|o| o.members > 0 && !except.contains(&&*o.group))
        {
            let (due, work) = ordered.next_due();
            busy |= work;
            if let Some(at) = due {
                wake = Some(wake.map_or(at, |w| w.min(at)));
            }
        }
        (busy, wake)
    }
}
