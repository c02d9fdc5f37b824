//! Fault injection: duplicate deliveries, lost acks, failed and slow publishes, failed pulls,
//! held, delayed and reordered messages. When no fault is set, one boolean (`FaultState::active`) is all the hot
//! path reads.

#[allow(clippy::wildcard_imports)]
use super::*;

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
    pub(super) bus: &'a InMemoryBus,
}

impl Faults<'_> {
    pub(super) fn with(&self, change: impl FnOnce(&mut FaultState)) {
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

    /// The next pull by a member of a group on `subject` fails with [`BusError::Injected`] (a
    /// pull request lost on the way to a broker); the member's later pulls go on as before.
    pub fn fail_next_pull(&self, subject: &str) {
        self.with(|f| *f.failed_pulls.entry(subject.to_owned()).or_default() += 1);
    }

    /// Every publish to `subject` from now on is confirmed only `delay` later (a slow broker),
    /// until [`clear`](Self::clear).
    pub fn slow_publishes(&self, subject: &str, delay: Duration) {
        self.with(|f| {
            f.slow_publishes.insert(subject.to_owned(), delay);
        });
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
            f.failed_pulls.clear();
            f.slow_publishes.clear();
            f.holds.clear();
        });
    }
}
