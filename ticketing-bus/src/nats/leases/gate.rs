//! What a member fetched, in lanes per key: one delivery per key out at a time, the rest
//! parked behind it.

#[allow(clippy::wildcard_imports)]
use super::*;

pub(super) struct Pulled {
    pub(super) partition: u32,
    pub(super) key: Box<str>,
    pub(super) sequence: u64,
    pub(super) message: Arc<Message>,
    pub(super) acker: Arc<NatsAcker>,
    pub(super) attempt: u32,
    pub(super) published: tokio::time::Instant,
    /// When its ack-wait clock last started.
    pub(super) touched: tokio::time::Instant,
}

/// One key's events in this member: the head is handed out (or naked and due again), the
/// rest wait behind it.
pub(super) struct Lane {
    pub(super) partition: u32,
    pub(super) head: u64,
    pub(super) out: bool,
    /// The head delivered again while it is out (its ack wait ran out during the handling):
    /// handed out if the head is naked, dropped if it is acked (that acks the message).
    pub(super) again: Option<Pulled>,
    pub(super) parked: VecDeque<Pulled>,
}

/// What a member fetched, in lanes per key.
#[derive(Default)]
pub(super) struct Gate {
    pub(super) lanes: HashMap<Box<str>, Lane>,
    pub(super) ready: VecDeque<Pulled>,
    /// Partitions being given up: their lanes no longer move.
    pub(super) closing: HashSet<u32>,
}

impl Gate {
    /// Takes in a fetched message; true if it is ready to hand out.
    pub(super) fn admit(&mut self, pulled: Pulled) -> bool {
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
    pub(super) fn settled(&mut self, key: &str, sequence: u64, done: bool) -> bool {
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
    pub(super) fn settled_at(&mut self, partition: u32, sequence: u64) -> bool {
        let key = self
            .lanes
            .iter()
            .find(|(_, lane)| lane.partition == partition && lane.head == sequence)
            .map(|(key, _)| key.clone());
        key.is_some_and(|key| self.settled(&key, sequence, true))
    }

    /// Stops handing out `partition`: what is ready but not taken goes back to its lane.
    pub(super) fn close(&mut self, partition: u32) {
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
    pub(super) fn has_out(&self, partition: u32) -> bool {
        self.lanes
            .values()
            .any(|lane| lane.partition == partition && lane.out)
    }

    /// Forgets `partition`: the messages fetched and not handed out, in stream order.
    pub(super) fn drain(&mut self, partition: u32) -> Vec<Pulled> {
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
    pub(super) fn stale(&mut self, before: tokio::time::Instant) -> Vec<Arc<NatsAcker>> {
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
