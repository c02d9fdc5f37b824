//! Partitions for per-key ordered groups ([`Bus::subscribe_ordered`]), on a stream subject
//! transform (nats-server 2.10 or later).
//!
//! With [`NatsBusConfig::partitions`] set to `n`, the events stream maps
//! `{prefix}._k.{subject}.{key}` to `{prefix}._k.{subject}.{{partition(n,2)}}.{key}`, and the
//! bus publishes every event of a single-token subject (`ticket:created`) on the first form,
//! its key ([`ticketing_core::partition::token`]) as the last token: the server picks the
//! partition. An ordered group is one durable consumer per partition, `{name}__p{k}` (the name
//! of [`ticketing_core::bus::ordered_group_name`]),
//! filtering `{prefix}._k.{subject}.{k}.*` for each of its subjects, with one message
//! unacknowledged at a time: the broker hands a partition's next message out only once the one
//! before it is acked or terminated, to whichever member pulls. There is no lease to hold or
//! hand over: a member that dies leaves one unsettled delivery per partition it held, which
//! comes again to another member after the ack wait. Partition 0 also takes what was published
//! without a key token (before the stream had partitions, or on a subject with dots), so none
//! of it is lost. Plain groups filter both forms of each subject.

#[allow(clippy::wildcard_imports)]
use super::*;

use async_nats::jetstream::context::ConsumerInfoErrorKind;
use async_nats::jetstream::stream::SubjectTransform;
use ticketing_core::partition;

/// The token that starts the keyed form of a subject.
pub(super) const KEYED: &str = "_k";

/// The stream transform that puts the partition of the key into the subject.
pub(super) fn transform(prefix: &str, partitions: u32) -> SubjectTransform {
    SubjectTransform {
        source: format!("{prefix}.{KEYED}.*.*"),
        destination: format!(
            "{prefix}.{KEYED}.{{{{wildcard(1)}}}}.{{{{partition({partitions},2)}}}}.{{{{wildcard(2)}}}}"
        ),
    }
}

/// The partition count of a stream whose transform is ours for `prefix`.
pub(super) fn partitions_of(config: &stream::Config, prefix: &str) -> Option<u32> {
    let transform = config.subject_transform.as_ref()?;
    if transform.source != format!("{prefix}.{KEYED}.*.*") {
        return None;
    }
    let count = transform
        .destination
        .split("partition(")
        .nth(1)?
        .split(',')
        .next()?;
    count.trim().parse().ok()
}

impl Inner {
    /// The NATS subject a message of `subject` is published on: the keyed form when the stream
    /// has partitions and the subject is one token.
    pub(super) fn publish_subject(
        &self,
        subject: &str,
        headers: &Headers,
        id: Option<&str>,
    ) -> String {
        let prefix = &self.config.subject_prefix;
        if self.partitions.is_none() || subject.contains('.') {
            return format!("{prefix}.{subject}");
        }
        let fresh;
        let key = match partition::key_of(headers).or(id) {
            Some(key) => key,
            None => {
                // Nothing to order by: a key of its own.
                fresh = ticketing_core::Id::new().to_string();
                &fresh
            }
        };
        format!("{prefix}.{KEYED}.{subject}.{}", partition::token(key))
    }

    /// The filters of a plain group on `subject`: the plain form, and with partitions the
    /// keyed form in every partition.
    pub(super) fn plain_filters(&self, subject: &str) -> Vec<String> {
        let prefix = &self.config.subject_prefix;
        let mut filters = vec![format!("{prefix}.{subject}")];
        if self.partitions.is_some() && !subject.contains('.') {
            filters.push(format!("{prefix}.{KEYED}.{subject}.*.*"));
        }
        filters
    }
}

impl NatsBus {
    pub(super) async fn subscribe_partitioned(
        &self,
        subjects: &[&str],
        group: &str,
        options: SubscribeOptions,
    ) -> Result<Box<dyn Subscription>, BusError> {
        validate_member(subjects, group)?;
        let Some(partitions) = self.inner.partitions else {
            return Err(BusError::Unsupported(format!(
                "per-key ordered delivery needs partitions on stream {}: set \
                 NatsBusConfig::partitions (NATS_PARTITIONS), nats-server 2.10 or later",
                self.inner.config.stream
            )));
        };
        for subject in subjects {
            if subject.contains('.') {
                return Err(BusError::InvalidSubject {
                    subject: (*subject).to_owned(),
                    reason: "an ordered group's subjects are one token on NATS (the key takes one)",
                });
            }
        }
        let prefix = &self.inner.config.subject_prefix;
        let floors = self.plain_floors(subjects, group).await?;
        let group_name = ticketing_core::bus::ordered_group_name(group, subjects);
        // A partition's share of the group's unacknowledged messages: its holder fetches ahead
        // and hands different keys out at once.
        let per_partition = i64::try_from(options.max_ack_pending / partitions as usize)
            .unwrap_or(i64::MAX)
            .max(1);
        let mut consumers = Vec::with_capacity(partitions as usize);
        for index in 0..partitions {
            let mut filters: Vec<String> = subjects
                .iter()
                .map(|s| format!("{prefix}.{KEYED}.{s}.{index}.*"))
                .collect();
            if index == 0 {
                filters.extend(subjects.iter().map(|s| format!("{prefix}.{s}")));
            }
            let name = format!("{group_name}__p{index}");
            let events = &self.inner.events;
            // A new durable starts where the group's plain consumers left off (a service that
            // turns per-key order on replays nothing); an existing one keeps its start.
            let deliver_policy = match events.consumer_info(&name).await {
                Ok(info) => info.config.deliver_policy,
                Err(e) if e.kind() == ConsumerInfoErrorKind::NotFound => {
                    match floors.iter().map(|(_, floor)| *floor).min() {
                        Some(floor) => {
                            tracing::info!(
                                consumer = %name,
                                start_sequence = floor + 1,
                                "an ordered group starts where the group's plain consumers left off"
                            );
                            DeliverPolicy::ByStartSequence {
                                start_sequence: floor + 1,
                            }
                        }
                        None => DeliverPolicy::All,
                    }
                }
                Err(e) => return Err(backend(e)),
            };
            let config = pull::Config {
                durable_name: Some(name.clone()),
                description: Some(format!(
                    "ordered group {group} on {}, partition {index} of {partitions}",
                    subjects.join(", ")
                )),
                filter_subjects: filters,
                deliver_policy,
                ack_policy: AckPolicy::Explicit,
                ack_wait: options.ack_wait,
                // One delivery past the limit reaches a member, which dead-letters it.
                max_deliver: i64::from(options.max_deliver.max(1)) + 1,
                max_ack_pending: per_partition,
                ..Default::default()
            };
            let consumer: PullConsumer = self
                .inner
                .events
                .create_consumer(config)
                .await
                .map_err(|e| backend(format!("cannot create consumer {name}: {e}")))?;
            consumers.push((name, consumer));
        }
        let member = leases::Leased::join(
            self.inner.clone(),
            group,
            &group_name,
            consumers,
            floors,
            options,
        )
        .await?;
        Ok(Box::new(member))
    }
}

impl NatsBus {
    /// What the group's plain consumers of `subjects` acknowledged, per subject: its
    /// per-subject durables (`g--s`) and its consumer of several subjects (`g`), the later
    /// floor of the two. Members of a new ordered group ack unseen what they had handled.
    async fn plain_floors(
        &self,
        subjects: &[&str],
        group: &str,
    ) -> Result<Vec<(String, u64)>, BusError> {
        let mut floors = self.acked_before(subjects, group).await?;
        if subjects.len() > 1 {
            if let Some(floor) = self.ack_floor(group).await? {
                for subject in subjects {
                    match floors.iter_mut().find(|(s, _)| s == subject) {
                        Some(entry) => entry.1 = entry.1.max(floor),
                        None => floors.push(((*subject).to_owned(), floor)),
                    }
                }
            }
        }
        Ok(floors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_partition_count_is_read_back_from_our_transform_only() {
        let ours = stream::Config {
            subject_transform: Some(transform("app", 8)),
            ..Default::default()
        };
        assert_eq!(partitions_of(&ours, "app"), Some(8));
        assert_eq!(partitions_of(&ours, "other"), None);
        assert_eq!(partitions_of(&stream::Config::default(), "app"), None);
        assert_eq!(
            transform("app", 8).destination,
            "app._k.{{wildcard(1)}}.{{partition(8,2)}}.{{wildcard(2)}}"
        );
    }
}
