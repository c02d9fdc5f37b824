//! Where propagation time goes: the histograms the services export at `/metrics`, read before
//! and after the concurrent phase, give each stage of a ticket's way to the orders service
//! over that phase — the `POST /api/tickets` request (it ends with the commit of the ticket and
//! its event), the event's wait for the relay's confirmed publish, its wait for the first
//! delivery to the orders service's listener, and that listener's handling (its commit).
//! Quantiles are read off the buckets, linearly within one.

use std::collections::BTreeMap;

use prometheus_parse::{Sample, Scrape, Value};

/// A histogram's cumulative bucket counts by upper bound.
type Buckets = Vec<(f64, f64)>;

/// A stage: its label, its histogram and the labels that pick the series.
type StageMetric = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

/// The stages read, in the order an event goes through them.
const STAGES: [StageMetric; 4] = [
    (
        "POST /api/tickets (request to commit)",
        "http_request_duration_seconds",
        &[("method", "POST"), ("route", "/api/tickets")],
    ),
    (
        "commit -> relay publish confirmed",
        "ticketing_relay_lag_seconds",
        &[("subject", "ticket:created")],
    ),
    (
        "commit -> delivered to orders",
        "ticketing_delivery_lag_seconds",
        &[("subject", "ticket:created"), ("group", "orders-service")],
    ),
    (
        "orders' handling (to its commit)",
        "ticketing_handling_seconds",
        &[("subject", "ticket:created"), ("group", "orders-service")],
    ),
];

/// The histograms of every process scraped, summed by stage, and the deliveries of every
/// listener by outcome (`ticketing_deliveries_total`).
#[derive(Debug, Default, Clone)]
pub(crate) struct Snapshot(BTreeMap<&'static str, Buckets>, BTreeMap<String, f64>);

/// Reads `urls` (each a process's `/metrics`); a process that does not answer is left out.
pub(crate) async fn snapshot(http: &reqwest::Client, urls: &[String]) -> Snapshot {
    let mut snapshot = Snapshot::default();
    for url in urls {
        let Ok(response) = http.get(url).send().await else {
            continue;
        };
        let Ok(text) = response.text().await else {
            continue;
        };
        let Ok(scrape) = Scrape::parse(text.lines().map(|line| Ok(line.to_owned()))) else {
            continue;
        };
        for sample in scrape
            .samples
            .iter()
            .filter(|s| s.metric == "ticketing_deliveries_total")
        {
            if let (Some(outcome), Value::Counter(count) | Value::Untyped(count)) =
                (sample.labels.get("outcome"), &sample.value)
            {
                *snapshot.1.entry(outcome.to_owned()).or_default() += count;
            }
        }
        for (label, metric, labels) in STAGES {
            for sample in scrape.samples.iter().filter(|s| matches(s, metric, labels)) {
                if let Value::Histogram(counts) = &sample.value {
                    let buckets = snapshot.0.entry(label).or_default();
                    add(buckets, counts.iter().map(|c| (c.less_than, c.count)));
                }
            }
        }
    }
    snapshot
}

fn matches(sample: &Sample, metric: &str, labels: &[(&str, &str)]) -> bool {
    sample.metric == metric
        && labels
            .iter()
            .all(|(name, value)| sample.labels.get(name) == Some(*value))
}

/// Adds cumulative counts to `into`, bucket by bucket.
fn add(into: &mut Buckets, counts: impl Iterator<Item = (f64, f64)>) {
    for (bound, count) in counts {
        match into.iter_mut().find(|(b, _)| *b == bound) {
            Some((_, total)) => *total += count,
            None => into.push((bound, count)),
        }
    }
    into.sort_by(|a, b| a.0.total_cmp(&b.0));
}

/// The deliveries of every listener between `before` and `after`, and the share of them
/// answered "wait" (a version gap: redelivered later), in percent.
pub(crate) fn waits(before: &Snapshot, after: &Snapshot) -> (u64, u64, f64) {
    let delta = |outcome: &str| {
        after.1.get(outcome).copied().unwrap_or_default()
            - before.1.get(outcome).copied().unwrap_or_default()
    };
    let total: f64 = after.1.keys().map(|outcome| delta(outcome)).sum();
    let waited = delta("waited");
    let share = if total > 0.0 {
        100.0 * waited / total
    } else {
        0.0
    };
    (total as u64, waited as u64, share)
}

/// One stage over the phase: (label, events, p50, p99) in seconds.
pub(crate) type Stage = (&'static str, u64, Option<f64>, Option<f64>);

/// What each stage took between `before` and `after`.
pub(crate) fn between(before: &Snapshot, after: &Snapshot) -> Vec<Stage> {
    STAGES
        .iter()
        .map(|(label, _, _)| {
            let empty = Vec::new();
            let start = before.0.get(label).unwrap_or(&empty);
            let delta: Buckets = after
                .0
                .get(label)
                .unwrap_or(&empty)
                .iter()
                .map(|(bound, count)| {
                    let earlier = start
                        .iter()
                        .find(|(b, _)| b == bound)
                        .map_or(0.0, |(_, c)| *c);
                    (*bound, count - earlier)
                })
                .collect();
            let total = delta.last().map_or(0.0, |(_, count)| *count);
            (
                *label,
                total as u64,
                quantile(&delta, 0.5),
                quantile(&delta, 0.99),
            )
        })
        .collect()
}

/// The `q` quantile of cumulative buckets, interpolated linearly within its bucket.
fn quantile(buckets: &Buckets, q: f64) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for &(bound, count) in buckets {
        if count >= rank {
            if bound.is_infinite() {
                return Some(lower.0);
            }
            let share = if count > lower.1 {
                (rank - lower.1) / (count - lower.1)
            } else {
                1.0
            };
            return Some(lower.0 + (bound - lower.0) * share);
        }
        lower = (bound, count);
    }
    Some(lower.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_share_of_waits_counts_every_outcome_between_the_snapshots() {
        let counts = |acked: f64, waited: f64| {
            let mut s = Snapshot::default();
            s.1.insert("acked".into(), acked);
            s.1.insert("waited".into(), waited);
            s.1.insert("retried".into(), 0.0);
            s
        };
        assert_eq!(
            waits(&counts(10.0, 1.0), &counts(105.0, 6.0)),
            (100, 5, 5.0)
        );
    }

    #[test]
    fn quantiles_are_interpolated_within_their_bucket() {
        let buckets = vec![
            (0.01, 50.0),
            (0.02, 90.0),
            (0.1, 100.0),
            (f64::INFINITY, 100.0),
        ];
        assert_eq!(quantile(&buckets, 0.5), Some(0.01));
        let p99 = quantile(&buckets, 0.99).expect("a p99");
        assert!((p99 - 0.092).abs() < 1e-9, "{p99}");
        assert_eq!(quantile(&Vec::new(), 0.5), None);
    }

    #[test]
    fn stages_count_only_what_happened_between_the_snapshots() {
        let snapshot = |counts: [f64; 3]| {
            let mut s = Snapshot::default();
            s.0.insert(
                STAGES[1].0,
                vec![
                    (0.01, counts[0]),
                    (0.1, counts[1]),
                    (f64::INFINITY, counts[2]),
                ],
            );
            s
        };
        let stages = between(
            &snapshot([100.0, 100.0, 100.0]),
            &snapshot([100.0, 110.0, 110.0]),
        );
        let (_, events, p50, _) = stages[1];
        assert_eq!(waits(&snapshot([0.0; 3]), &snapshot([0.0; 3])), (0, 0, 0.0));
        assert_eq!(events, 10);
        // All ten fell between 10 and 100 ms.
        assert!(p50.is_some_and(|p| (0.01..=0.1).contains(&p)), "{p50:?}");
        assert_eq!(stages[0].1, 0);
    }
}
