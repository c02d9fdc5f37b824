//! A queue group on several subjects as one durable consumer (`filter_subjects`, nats-server
//! 2.10 or later), and its start where the group's per-subject durables left off.

#[allow(clippy::wildcard_imports)]
use super::*;

use async_nats::jetstream::context::ConsumerInfoErrorKind;

/// The first nats-server release with consumers of several subjects.
pub const SEVERAL_SUBJECTS_SINCE: (u64, u64) = (2, 10);

/// `major.minor` of a server's version string (`2.9.10`, `v2.12.1-RC.1`).
fn major_minor(version: &str) -> Option<(u64, u64)> {
    let mut parts = version.trim_start_matches('v').split(['.', '-']);
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// Whether a server's version string is `release` or later.
pub(super) fn at_least(version: &str, release: (u64, u64)) -> bool {
    major_minor(version).is_some_and(|v| v >= release)
}

impl NatsBus {
    pub(super) async fn subscribe_several(
        &self,
        subjects: &[&str],
        group: &str,
        options: SubscribeOptions,
    ) -> Result<Box<dyn Subscription>, BusError> {
        validate_member(subjects, group)?;
        let version = self.inner.client.server_info().version;
        if !at_least(&version, SEVERAL_SUBJECTS_SINCE) {
            return Err(BusError::Unsupported(format!(
                "a consumer of several subjects needs nats-server {}.{} or later; the server is {version:?}",
                SEVERAL_SUBJECTS_SINCE.0, SEVERAL_SUBJECTS_SINCE.1
            )));
        }
        let mut filters: Vec<String> = subjects
            .iter()
            .flat_map(|s| self.inner.plain_filters(s))
            .collect();
        filters.sort();
        let config = |deliver_policy| pull::Config {
            durable_name: Some(group.to_owned()),
            description: Some(format!("queue group {group} on {}", subjects.join(", "))),
            filter_subjects: filters.clone(),
            deliver_policy,
            ack_policy: AckPolicy::Explicit,
            ack_wait: options.ack_wait,
            // One delivery past the limit reaches a member, which dead-letters it.
            max_deliver: i64::from(options.max_deliver.max(1)) + 1,
            max_ack_pending: i64::try_from(options.max_ack_pending.max(1)).unwrap_or(i64::MAX),
            ..Default::default()
        };
        let events = &self.inner.events;
        let acked_before = self.acked_before(subjects, group).await?;
        let consumer: PullConsumer = match events.consumer_info(group).await {
            Ok(info) => {
                let mut current = info.config.filter_subjects.clone();
                current.sort();
                if current == filters {
                    events.get_consumer(group).await.map_err(backend)?
                } else {
                    // Another set of subjects (an event added to the listener): the same
                    // durable, its position kept, the filter updated.
                    let mut update = config(info.config.deliver_policy);
                    update.description =
                        Some(format!("queue group {group} on {}", subjects.join(", ")));
                    events.update_consumer(update).await.map_err(backend)?
                }
            }
            Err(e) if e.kind() == ConsumerInfoErrorKind::NotFound => {
                let start = match acked_before.iter().map(|(_, floor)| *floor).min() {
                    Some(floor) => {
                        tracing::info!(
                            group,
                            start_sequence = floor + 1,
                            "a consumer of several subjects starts where the group's per-subject consumers left off"
                        );
                        DeliverPolicy::ByStartSequence {
                            start_sequence: floor + 1,
                        }
                    }
                    None => DeliverPolicy::All,
                };
                events
                    .create_consumer(config(start))
                    .await
                    .map_err(|e| backend(format!("cannot create consumer {group}: {e}")))?
            }
            Err(e) => return Err(backend(e)),
        };
        Ok(Box::new(NatsSubscription::new(
            self.inner.clone(),
            consumer,
            group,
            options,
            acked_before,
        )))
    }

    /// What the group's per-subject durables (the consumers of the subjects one by one, which
    /// a service used before it consumed them together) acknowledged: each subject's NATS name
    /// with the stream sequence through which its durable acknowledged everything. A new
    /// consumer of all of them starts after the lowest, and its members ack unseen what each
    /// subject's durable had handled, so the move neither replays the history nor skips a
    /// message (what a durable acknowledged past its floor may come again: handlers are
    /// idempotent under at-least-once). The old durables are left in place: a rollback resumes
    /// on them; delete them once the move is done (`nats consumer rm`).
    pub(super) async fn acked_before(
        &self,
        subjects: &[&str],
        group: &str,
    ) -> Result<Vec<(String, u64)>, BusError> {
        let mut floors = Vec::new();
        for subject in subjects {
            if let Some(floor) = self.ack_floor(&consumer_name(group, subject)).await? {
                floors.push(((*subject).to_owned(), floor));
            }
        }
        Ok(floors)
    }

    /// The stream sequence through which the durable `name` acknowledged everything; `None`
    /// when there is no such durable.
    pub(super) async fn ack_floor(&self, name: &str) -> Result<Option<u64>, BusError> {
        match self.inner.events.consumer_info(name).await {
            Ok(info) => Ok(Some(info.ack_floor.stream_sequence)),
            Err(e) if e.kind() == ConsumerInfoErrorKind::NotFound => Ok(None),
            Err(e) => Err(backend(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::major_minor;

    #[test]
    fn server_versions_are_read_as_major_and_minor() {
        assert_eq!(major_minor("2.9.10"), Some((2, 9)));
        assert_eq!(major_minor("v2.12.1-RC.1"), Some((2, 12)));
        assert_eq!(major_minor("2.10.0-beta"), Some((2, 10)));
        assert_eq!(major_minor(""), None);
        assert!(major_minor("2.9.10").unwrap() < super::SEVERAL_SUBJECTS_SINCE);
    }
}
