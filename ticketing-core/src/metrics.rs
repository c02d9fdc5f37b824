//! What the SDK measures, through the [`metrics`] facade (as it logs through `tracing`): nothing
//! is recorded unless the application installs a recorder — the reference services install the
//! Prometheus exporter and serve it at `/metrics`.
//!
//! | name | kind | labels | what |
//! |---|---|---|---|
//! | `ticketing_deliveries_total` | counter | `subject`, `group`, `outcome` | deliveries handled by a listener: `acked`, `retried` (a transient failure, redelivered after a backoff), `waited` (a version gap, redelivered later), `dead_lettered` |
//! | `ticketing_handling_seconds` | histogram | `subject`, `group` | time from delivery to settlement |
//! | `ticketing_delivery_lag_seconds` | histogram | `subject`, `group` | time from the event's `ce-time` (when it was made: for an event of the outbox, inside the transaction of its change) to its first delivery to the listener |
//! | `ticketing_relay_lag_seconds` | histogram | `subject` | time from an outbox event's `ce-time` to the broker's confirmation of the relay's publish |
//! | `ticketing_publish_seconds` | histogram | `subject`, `outcome` (`ok`, `error`) | time for the broker to confirm a publish |
//! | `ticketing_outbox_pending` | gauge | `outbox` | events the relay found pending at its last round (at most a batch) |

use std::time::Duration;

/// Deliveries handled, by outcome.
pub const DELIVERIES: &str = "ticketing_deliveries_total";
/// Handling time of a delivery.
pub const HANDLING: &str = "ticketing_handling_seconds";
/// Publish confirmation time.
pub const PUBLISH: &str = "ticketing_publish_seconds";
/// From an event's making to its first delivery.
pub const DELIVERY_LAG: &str = "ticketing_delivery_lag_seconds";
/// From an outbox event's making to its confirmed publish by the relay.
pub const RELAY_LAG: &str = "ticketing_relay_lag_seconds";
/// Events pending in an outbox.
pub const OUTBOX_PENDING: &str = "ticketing_outbox_pending";

/// How a delivery was settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// Handled and acked.
    Acked,
    /// A transient failure: redelivered after a backoff.
    Retried,
    /// A version gap: redelivered later, without using the retry budget.
    Waited,
    /// Moved to the dead letters.
    DeadLettered,
}

impl DeliveryOutcome {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryOutcome::Acked => "acked",
            DeliveryOutcome::Retried => "retried",
            DeliveryOutcome::Waited => "waited",
            DeliveryOutcome::DeadLettered => "dead_lettered",
        }
    }
}

/// Records a settled delivery (registering its metrics: a listener keeps them instead, in
/// [`DeliveryMetrics`]).
pub fn delivery(subject: &'static str, group: &str, outcome: DeliveryOutcome, took: Duration) {
    deliveries(subject, group, outcome).increment(1);
    handling(subject, group).record(took.as_secs_f64());
}

fn deliveries(subject: &'static str, group: &str, outcome: DeliveryOutcome) -> metrics::Counter {
    metrics::counter!(
        DELIVERIES,
        "subject" => subject,
        "group" => group.to_owned(),
        "outcome" => outcome.as_str()
    )
}

fn handling(subject: &'static str, group: &str) -> metrics::Histogram {
    metrics::histogram!(HANDLING, "subject" => subject, "group" => group.to_owned())
}

/// The delivery metrics of one subject in one group, registered once: recording a delivery
/// through them builds no label and allocates nothing. The listener pipeline registers them at
/// a listener's first delivery of each subject, from the recorder installed then — install the
/// recorder before starting listeners.
#[derive(Clone)]
pub struct DeliveryMetrics {
    /// By [`DeliveryOutcome`], in its order.
    outcomes: [metrics::Counter; 4],
    handling: metrics::Histogram,
    lag: metrics::Histogram,
}

impl DeliveryMetrics {
    /// Registers the counters and the histogram of `subject` in `group`.
    pub fn register(subject: &'static str, group: &str) -> Self {
        DeliveryMetrics {
            outcomes: [
                DeliveryOutcome::Acked,
                DeliveryOutcome::Retried,
                DeliveryOutcome::Waited,
                DeliveryOutcome::DeadLettered,
            ]
            .map(|outcome| deliveries(subject, group, outcome)),
            handling: handling(subject, group),
            lag: metrics::histogram!(DELIVERY_LAG, "subject" => subject, "group" => group.to_owned()),
        }
    }

    /// Records a first delivery `lag` after the event was made.
    pub fn record_lag(&self, lag: Duration) {
        self.lag.record(lag.as_secs_f64());
    }

    /// Records a delivery settled with `outcome` after `took`.
    pub fn record(&self, outcome: DeliveryOutcome, took: Duration) {
        self.outcomes[outcome as usize].increment(1);
        self.handling.record(took.as_secs_f64());
    }
}

impl std::fmt::Debug for DeliveryMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryMetrics").finish_non_exhaustive()
    }
}

/// Records a publish and how long the broker took to confirm it.
pub fn published(subject: &str, ok: bool, took: Duration) {
    metrics::histogram!(
        PUBLISH,
        "subject" => subject.to_owned(),
        "outcome" => if ok { "ok" } else { "error" }
    )
    .record(took.as_secs_f64());
}

/// Records an outbox event published by the relay `lag` after it was made.
pub fn relayed(subject: &str, lag: Duration) {
    metrics::histogram!(RELAY_LAG, "subject" => subject.to_owned()).record(lag.as_secs_f64());
}

/// How long ago an event was made, by its `ce-time` header (`None` without one, or for a time
/// ahead of this clock).
pub fn age(headers: &crate::bus::Headers) -> Option<Duration> {
    let made = chrono::DateTime::parse_from_rfc3339(headers.get(crate::envelope::TIME)?).ok()?;
    (chrono::Utc::now() - made.with_timezone(&chrono::Utc))
        .to_std()
        .ok()
}

/// Records what an outbox holds.
pub fn outbox_pending(outbox: &str, pending: usize) {
    metrics::gauge!(OUTBOX_PENDING, "outbox" => outbox.to_owned()).set(pending as f64);
}
