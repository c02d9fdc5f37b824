//! The versioned replica contract (`find_by_event`).
//!
//! A replica applies an event of version N only if it holds version N−1:
//!
//! | replica holds | event version N | answer |
//! |---|---|---|
//! | nothing | 0 | [`Apply`](EventDisposition::Apply) (create) |
//! | nothing | > 0 | [`Gap`](EventDisposition::Gap) |
//! | N−1 | N | [`Apply`](EventDisposition::Apply) |
//! | ≥ N | N | [`Duplicate`](EventDisposition::Duplicate) |
//! | < N−1 | N | [`Gap`](EventDisposition::Gap) |
//!
//! Every store backend answers `find_by_event` through [`disposition_from`], so the rule lives in
//! one place; [`ReplicaStart`] says where a replica that holds nothing of a record starts.

use serde::{Deserialize, Serialize};

/// A record version. The owning service starts a record at 0 and adds exactly 1 per change it
/// publishes; replicas copy versions from events.
pub type Version = u64;

/// What a replica should do with a versioned event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventDisposition {
    /// The replica holds the previous version: apply the change and store the event's version.
    Apply,
    /// The replica already holds this version or a later one: nothing to do, acknowledge.
    Duplicate,
    /// An earlier event has not arrived yet: retry soon, dead-letter after the attempt budget.
    Gap,
}

/// The contract: the disposition of an event of version `event` for a replica holding
/// `stored` (or nothing).
///
/// ```
/// use ticketing_core::version::{disposition, EventDisposition::*};
///
/// assert_eq!(disposition(None, 0), Apply);
/// assert_eq!(disposition(None, 3), Gap);
/// assert_eq!(disposition(Some(2), 3), Apply);
/// assert_eq!(disposition(Some(3), 3), Duplicate);
/// assert_eq!(disposition(Some(1), 3), Gap);
/// ```
pub const fn disposition(stored: Option<Version>, event: Version) -> EventDisposition {
    match stored {
        None if event == 0 => EventDisposition::Apply,
        None => EventDisposition::Gap,
        Some(held) if held >= event => EventDisposition::Duplicate,
        Some(held) if held + 1 == event => EventDisposition::Apply,
        Some(_) => EventDisposition::Gap,
    }
}

/// Where a replica starts a record it holds nothing of.
///
/// | policy | replica holds nothing, event version 0 | replica holds nothing, event version N > 0 |
/// |---|---|---|
/// | [`FromFirst`](Self::FromFirst) (default) | Apply | Gap: version 0 is on its way |
/// | [`FirstSeen`](Self::FirstSeen) | Apply | Apply: the replica starts at N |
///
/// Once the replica holds a version the rule is the same under both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum ReplicaStart {
    /// Every record is seen from its first event (version 0): a later event of an unknown record
    /// waits for it. Right for a replica that consumes every event of the record from the start
    /// of the stream.
    #[default]
    FromFirst,
    /// The first event seen of a record is applied whatever its version. Right for a replica
    /// that only hears a record's later events (a listener of `order:completed` alone), or one
    /// started on a stream whose early events are gone: under `FromFirst` it would wait, and
    /// dead-letter after the gap horizon (hours).
    FirstSeen,
}

/// [`disposition`] under a start policy: the same, except that under
/// [`ReplicaStart::FirstSeen`] a replica holding nothing applies any version.
///
/// ```
/// use ticketing_core::version::{disposition_from, EventDisposition::*, ReplicaStart::*};
///
/// assert_eq!(disposition_from(FromFirst, None, 3), Gap);
/// assert_eq!(disposition_from(FirstSeen, None, 3), Apply);
/// assert_eq!(disposition_from(FirstSeen, Some(3), 5), Gap);
/// ```
pub const fn disposition_from(
    start: ReplicaStart,
    stored: Option<Version>,
    event: Version,
) -> EventDisposition {
    match (start, stored) {
        (ReplicaStart::FirstSeen, None) => EventDisposition::Apply,
        _ => disposition(stored, event),
    }
}

/// The version an owner writes after `current`.
pub const fn next(current: Version) -> Version {
    current + 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn exactly_one_answer_per_pair(stored in proptest::option::of(0u64..1000), event in 0u64..1000) {
            let d = disposition(stored, event);
            let expected = match stored {
                None => if event == 0 { EventDisposition::Apply } else { EventDisposition::Gap },
                Some(s) if event <= s => EventDisposition::Duplicate,
                Some(s) if event == s + 1 => EventDisposition::Apply,
                Some(_) => EventDisposition::Gap,
            };
            prop_assert_eq!(d, expected);
        }

        #[test]
        fn applying_a_shuffled_log_with_retry_on_gap_reaches_the_last_version(
            len in 1usize..40,
            seed in any::<u64>(),
        ) {
            // A deterministic shuffle of versions 0..len, plus duplicates.
            let mut log: Vec<u64> = (0..len as u64).chain(0..len as u64 / 2).collect();
            let mut state = seed | 1;
            for i in (1..log.len()).rev() {
                state ^= state << 13; state ^= state >> 7; state ^= state << 17;
                log.swap(i, (state % (i as u64 + 1)) as usize);
            }
            let mut held: Option<u64> = None;
            let mut queue: std::collections::VecDeque<u64> = log.into();
            let mut steps = 0;
            while let Some(v) = queue.pop_front() {
                steps += 1;
                prop_assert!(steps < 10_000);
                match disposition(held, v) {
                    EventDisposition::Apply => held = Some(v),
                    EventDisposition::Duplicate => {}
                    EventDisposition::Gap => queue.push_back(v),
                }
            }
            prop_assert_eq!(held, Some(len as u64 - 1));
        }
    }
}
