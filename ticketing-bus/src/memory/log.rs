//! Per-subject logs: append with retention limits, and message-id de-duplication.

#[allow(clippy::wildcard_imports)]
use super::*;

impl State {
    pub(super) fn log_id(&mut self, subject: &str) -> LogId {
        if let Some(&id) = self.log_ids.get(subject) {
            return id;
        }
        let subject: Arc<str> = Arc::from(subject);
        let id = self.logs.len();
        self.logs.push(Log {
            subject: subject.clone(),
            first_seq: 1,
            messages: VecDeque::new(),
            published: VecDeque::new(),
            stamps: VecDeque::new(),
            bytes: 0,
            consumers: Vec::new(),
            ordered: Vec::new(),
            held: FastMap::default(),
        });
        self.log_ids.insert(subject, id);
        id
    }

    pub(super) fn next_order(&mut self) -> u64 {
        self.next_order += 1;
        self.next_order
    }

    pub(super) fn publish(&mut self, message: Prepared) -> Result<PublishAck, BusError> {
        let Prepared {
            mut stored,
            message_id,
            size,
            now,
        } = message;
        if self.faults.active
            && FaultState::take(&mut self.faults.failed_publishes, &stored.subject)
        {
            self.faults.refresh();
            return Err(BusError::Injected(format!(
                "publish to {} failed",
                stored.subject
            )));
        }
        if !self.dedup_order.is_empty() {
            self.expire_dedup(now);
        }
        if let Some(id) = &message_id {
            if let Some(&sequence) = self.dedup.get(id.as_str()) {
                return Ok(PublishAck {
                    sequence,
                    duplicate: true,
                });
            }
        }
        let log_id = match self.log_ids.get(stored.subject.as_str()) {
            Some(&id) => id,
            None => {
                validate_subject(&stored.subject)?;
                self.log_id(&stored.subject)
            }
        };
        let config = self.config;
        let log = &mut self.logs[log_id];
        let sequence = log.next_seq();
        if let Some(unshared) = Arc::get_mut(&mut stored) {
            unshared.sequence = sequence;
        }
        self.stamps += 1;
        // Ordered groups take it whatever retention drops (a clone only when there are some).
        let routed = (!log.ordered.is_empty()).then(|| stored.clone());
        log.messages.push_back(stored);
        log.published.push_back(now);
        log.stamps.push_back(self.stamps);
        log.bytes += size;
        while log.messages.len() > config.max_messages_per_subject
            || (log.bytes > config.max_bytes_per_subject && log.messages.len() > 1)
        {
            log.published.pop_front();
            log.stamps.pop_front();
            if let Some(old) = log.messages.pop_front() {
                log.bytes -= stored_size(&old);
                log.held.remove(&old.sequence);
                log.first_seq += 1;
            }
        }
        if self.faults.active {
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
        if let Some(id) = message_id {
            let id: Arc<str> = Arc::from(id);
            self.dedup.insert(id.clone(), sequence);
            self.dedup_order.push_back((now, id));
            if self.dedup_order.len() > config.max_duplicate_ids {
                if let Some((_, old)) = self.dedup_order.pop_front() {
                    self.dedup.remove(&old);
                }
            }
        }
        if let Some(message) = routed {
            self.route_ordered(log_id, &message, now);
        }
        for &id in &self.logs[log_id].consumers {
            self.consumers[id].wake();
        }
        Ok(PublishAck {
            sequence,
            duplicate: false,
        })
    }

    pub(super) fn expire_dedup(&mut self, now: Instant) {
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
}

/// A message made ready for the log before its lock is taken: the allocation and the clock
/// read stay out of the time the lock is held.
pub(super) struct Prepared {
    /// The stored message; its sequence is set when it is appended.
    stored: Arc<Message>,
    message_id: Option<String>,
    size: usize,
    now: Instant,
}

impl Prepared {
    pub(super) fn new(message: OutgoingMessage) -> Self {
        let stored = Message {
            subject: message.subject,
            payload: message.payload,
            headers: message.headers,
            sequence: 0,
        };
        Prepared {
            size: stored_size(&stored),
            stored: Arc::new(stored),
            message_id: message.message_id,
            now: Instant::now(),
        }
    }

    pub(super) fn subject(&self) -> &str {
        &self.stored.subject
    }

    /// The same message, stored now rather than when it was made ready (after a delay).
    pub(super) fn stored_now(self) -> Self {
        Prepared {
            now: Instant::now(),
            ..self
        }
    }
}

/// What a message counts against `max_bytes_per_subject`: payload, subject and headers.
fn stored_size(message: &Message) -> usize {
    message.payload.len()
        + message.subject.len()
        + message
            .headers
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum::<usize>()
}
