//! The ack deadlines of a consumer's pending deliveries.

use std::collections::VecDeque;

use tokio::time::Instant;

/// The ack deadlines of a consumer's pending deliveries, in order: a sorted `VecDeque`, not a
/// `BTreeSet`, which allocates a node whenever it goes from empty to one entry (every delivery
/// of a listener that keeps up). Deadlines are the take time plus the ack wait, so a new one
/// almost always goes at the back and the oldest is settled first: both ends are O(1).
#[derive(Default)]
pub(super) struct Deadlines(VecDeque<(Instant, u64)>);

impl Deadlines {
    pub(super) fn insert(&mut self, entry: (Instant, u64)) {
        match self.0.back() {
            Some(last) if *last > entry => {
                let at = self.0.partition_point(|e| *e < entry);
                self.0.insert(at, entry);
            }
            _ => self.0.push_back(entry),
        }
    }

    pub(super) fn remove(&mut self, entry: &(Instant, u64)) {
        if self.0.front() == Some(entry) {
            self.0.pop_front();
        } else if let Ok(at) = self.0.binary_search(entry) {
            self.0.remove(at);
        }
    }

    pub(super) fn first(&self) -> Option<&(Instant, u64)> {
        self.0.front()
    }

    pub(super) fn pop_first(&mut self) -> Option<(Instant, u64)> {
        self.0.pop_front()
    }
}
