//! The transactional outbox, read side: events committed together with the state change they
//! announce wait in an [`Outbox`]; a relay ([`spawn_relay`]) publishes them to any [`Bus`] and
//! removes them once the broker confirmed.
//!
//! Rules the relay keeps:
//!
//! - **At least once, de-duplicated.** Each event is published with its message id, and removed
//!   only after the broker's confirmation: a relay stopped between the two publishes it again,
//!   and the broker drops the repeat within its de-duplication window.
//! - **Per-record order.** Events of one key (one record) are published in commit order; after a
//!   failed publish, later events of that key wait for it. Keys are published concurrently.
//! - **One active relay.** Relays of several replicas of a service take turns through the
//!   outbox's lease; the others stand by.
//! - **Prompt.** The relay wakes when the outbox says new events may be pending
//!   ([`Outbox::changed`]), and polls as a fallback for a missed wake-up.
//!
//! The write side: the store operations that take an [`Announce`](crate::store::Announce)
//! closure (`create_announcing`, `update_announcing`, `update_for_order`,
//! `reserve_announcing`, `set_status_announcing`) commit the events it makes in the same unit as
//! the change; [`announce`] turns a typed event into the message committed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio_util::sync::CancellationToken;

use crate::bus::{Bus, OutgoingMessage};
use crate::event::Event;
use crate::listener::RetryBackoff;
use crate::publisher::{PublishError, Publisher};
use crate::store::StoreError;
use crate::task::Task;

/// The message an event is committed to the outbox as: the same as [`Publisher`] sends (JSON,
/// its message id for de-duplication), for an [`Announce`](crate::store::Announce) closure.
///
/// ```
/// use ticketing_core::ticketing::events::ExpirationComplete;
/// use ticketing_core::{outbox, Id};
///
/// let messages = outbox::announce(&ExpirationComplete { order_id: Id::new() }).unwrap();
/// assert_eq!(messages[0].subject, "expiration:complete");
/// assert!(messages[0].message_id.is_some());
/// ```
pub fn announce<E: Event>(event: &E) -> Result<Vec<OutgoingMessage>, PublishError> {
    Ok(vec![Publisher::<E>::encode(event)?])
}

/// The position of an event in its outbox: later commits have larger ids.
pub type OutboxId = u64;

/// An event waiting to be published.
#[derive(Debug, Clone)]
pub struct OutboxEvent {
    /// Its position in the outbox.
    pub id: OutboxId,
    /// The record it is about (`"ticket:<id>"`): events of one key are published in id order.
    pub key: String,
    /// What to publish, with its message id.
    pub message: OutgoingMessage,
}

/// Where committed events wait for the relay. Implemented by each store backend.
#[async_trait]
pub trait Outbox: Send + Sync + 'static {
    /// Up to `limit` pending events; the events of one key in commit order. An event committed
    /// late by a slow transaction must not be skipped: backends keep every event until it is
    /// [removed](Self::remove), so a late one is simply returned by a later call.
    async fn pending(&self, limit: usize) -> Result<Vec<OutboxEvent>, StoreError>;

    /// Forgets published events; unknown ids are ignored.
    async fn remove(&self, ids: &[OutboxId]) -> Result<(), StoreError>;

    /// Completes when new events may be pending. A wake-up that happens while nobody waits is
    /// kept for the next call (as `tokio::sync::Notify::notify_one` does), so none is lost
    /// between two calls. The default never completes: the relay then relies on its poll.
    async fn changed(&self) {
        std::future::pending::<()>().await;
    }

    /// Whether [`changed`](Self::changed) also completes on commits of other processes (as
    /// PostgreSQL's `LISTEN`/`NOTIFY` does). When it does not (the default), a relay that is
    /// standing by tells the lease holder of its own process's commits through the bus
    /// ([`Bus::signal`]), so they are published at once rather than at the holder's next poll.
    fn wakes_other_processes(&self) -> bool {
        false
    }

    /// Takes, or renews, the relay lease for `holder` until `ttl` from now; `false` while
    /// another holder's lease runs. The default grants it always (one relay per outbox).
    async fn lease(&self, holder: &str, ttl: Duration) -> Result<bool, StoreError> {
        let _ = (holder, ttl);
        Ok(true)
    }
}

/// How a relay works.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RelayOptions {
    /// Events read per round. Default 1024.
    pub batch: usize,
    /// Publishes awaiting the broker's confirmation at once (the window). Default 256.
    pub in_flight: usize,
    /// Fallback poll when no wake-up comes. Default 1 s.
    pub poll: Duration,
    /// How long a lease lasts; renewed when a third of it has passed. Default 10 s.
    pub lease_ttl: Duration,
    /// Pause after a failed round (broker or database down), by consecutive failures.
    pub backoff: RetryBackoff,
    /// On stop, how long the relay may keep publishing what is pending before it leaves the
    /// rest to the next relay. Default 5 s.
    pub drain: Duration,
    /// The `outbox` label of its metrics (the service's name). Default `outbox`.
    pub name: &'static str,
}

impl Default for RelayOptions {
    fn default() -> Self {
        RelayOptions {
            batch: 1024,
            in_flight: 256,
            poll: Duration::from_secs(1),
            lease_ttl: Duration::from_secs(10),
            backoff: RetryBackoff {
                initial: Duration::from_millis(50),
                multiplier: 2.0,
                max: Duration::from_secs(5),
            },
            drain: Duration::from_secs(5),
            name: "outbox",
        }
    }
}

/// A running relay.
#[derive(Debug)]
pub struct RelayHandle(Task);

impl RelayHandle {
    /// Stops: finishes the round in progress, publishes what is still pending for up to
    /// [`RelayOptions::drain`] (when it holds the lease), and returns; events not yet
    /// confirmed stay in the outbox for the next relay.
    pub async fn stop(self) {
        self.0.stop("outbox relay").await;
    }
}

/// What one round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RoundReport {
    /// Events the broker confirmed (new or duplicate) and the outbox forgot.
    pub published: usize,
    /// Whether a publish or the outbox failed.
    pub failed: bool,
    /// Whether the batch was full (more may be pending).
    pub full: bool,
    /// Events read: what was pending (at most a batch).
    pub read: usize,
}

/// Starts a relay from `outbox` to `bus` named `holder` (unique per process); it stops when
/// `token` is cancelled or on [`RelayHandle::stop`].
pub fn spawn_relay(
    outbox: Arc<dyn Outbox>,
    bus: Arc<dyn Bus>,
    holder: impl Into<String>,
    options: RelayOptions,
    token: CancellationToken,
) -> RelayHandle {
    let holder = holder.into();
    let work = relay(outbox, bus, holder, options, token.clone());
    RelayHandle(Task::spawn(token, work))
}

async fn relay(
    outbox: Arc<dyn Outbox>,
    bus: Arc<dyn Bus>,
    holder: String,
    options: RelayOptions,
    token: CancellationToken,
) {
    let mut failures = 0u32;
    let mut leased_last = false;
    // Commits of processes whose relay stands by reach the lease holder as signals (when the
    // outbox cannot wake other processes itself and the bus has signals).
    let wake_subject = format!("outbox.{}", options.name);
    let mut wakes = if outbox.wakes_other_processes() {
        None
    } else {
        match bus.signals(&wake_subject).await {
            Ok(wakes) => Some(wakes),
            Err(error) => {
                tracing::debug!(%error, "no outbox wake-ups through the bus; the relay polls");
                None
            }
        }
    };
    // When the lease was last granted: it is renewed once a third of it has passed, not every
    // round (a database commit each time).
    let mut granted_at: Option<tokio::time::Instant> = None;
    'relaying: while !token.is_cancelled() {
        let fresh = granted_at.is_some_and(|at| at.elapsed() < options.lease_ttl / 3);
        let leased = fresh || {
            let asked_at = tokio::time::Instant::now();
            match outbox.lease(&holder, options.lease_ttl).await {
                Ok(true) => {
                    granted_at = Some(asked_at);
                    true
                }
                Ok(false) => {
                    granted_at = None;
                    false
                }
                Err(error) => {
                    tracing::warn!(%error, "outbox lease failed");
                    granted_at = None;
                    false
                }
            }
        };
        leased_last = leased;
        let pause = if !leased {
            // Stand by; try again before the holder's lease would run out.
            (options.lease_ttl / 3).max(Duration::from_millis(10))
        } else {
            let report = round(&*outbox, &*bus, options.batch, options.in_flight).await;
            crate::metrics::outbox_pending(options.name, report.read);
            if report.failed {
                failures = failures.saturating_add(1);
                options.backoff.delay(failures)
            } else if report.full {
                failures = 0;
                continue;
            } else {
                failures = 0;
                options.poll
            }
        };
        let until = tokio::time::Instant::now() + pause;
        loop {
            let woken = async {
                match wakes.as_mut() {
                    Some(wakes) => wakes.next().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = token.cancelled() => break 'relaying,
                _ = outbox.changed(), if failures == 0 => {
                    if leased {
                        break;
                    }
                    // Committed here while another process relays: tell it, and stand by on.
                    if wakes.is_some() {
                        if let Err(error) = bus.signal(&wake_subject, bytes::Bytes::new()).await {
                            tracing::debug!(%error, "could not wake the outbox relay holding the lease");
                        }
                    }
                }
                Some(_) = woken, if leased && failures == 0 => break,
                _ = tokio::time::sleep_until(until) => break,
            }
        }
    }
    if leased_last {
        let drain = async {
            loop {
                let report = round(&*outbox, &*bus, options.batch, options.in_flight).await;
                if report.failed || !report.full {
                    break;
                }
            }
        };
        if tokio::time::timeout(options.drain, drain).await.is_err() {
            tracing::warn!("outbox relay stopped with events still pending");
        }
    }
}

/// One round: reads up to `batch` events, publishes them (keys concurrently with at most
/// `in_flight` publishes awaiting confirmation, each key in order, stopping a key at its first
/// failure), forgets what the broker confirmed.
pub async fn round(
    outbox: &dyn Outbox,
    bus: &dyn Bus,
    batch: usize,
    in_flight: usize,
) -> RoundReport {
    let window = tokio::sync::Semaphore::new(in_flight.max(1));
    let events = match outbox.pending(batch.max(1)).await {
        Ok(events) => events,
        Err(error) => {
            tracing::warn!(%error, "reading the outbox failed");
            return RoundReport {
                failed: true,
                ..RoundReport::default()
            };
        }
    };
    let full = events.len() >= batch.max(1);
    let read = events.len();
    let mut by_key: HashMap<String, Vec<OutboxEvent>> = HashMap::new();
    let mut keys = Vec::new();
    for event in events {
        if !by_key.contains_key(&event.key) {
            keys.push(event.key.clone());
        }
        by_key.entry(event.key.clone()).or_default().push(event);
    }
    let mut publishing: FuturesUnordered<_> = keys
        .into_iter()
        .filter_map(|key| by_key.remove(&key))
        .map(|events| async {
            let mut confirmed = Vec::with_capacity(events.len());
            for event in events {
                let Ok(_permit) = window.acquire().await else {
                    return (confirmed, true);
                };
                let started = tokio::time::Instant::now();
                let subject = event.message.subject.clone();
                let age = crate::metrics::age(&event.message.headers);
                let published = bus.publish(event.message).await;
                crate::metrics::published(&subject, published.is_ok(), started.elapsed());
                match published {
                    Ok(_) => {
                        if let Some(age) = age {
                            crate::metrics::relayed(&subject, age + started.elapsed());
                        }
                        confirmed.push(event.id)
                    }
                    Err(error) => {
                        tracing::warn!(%error, key = %event.key, "publishing from the outbox failed; will retry");
                        return (confirmed, true);
                    }
                }
            }
            (confirmed, false)
        })
        .collect();
    let mut confirmed = Vec::new();
    let mut failed = false;
    while let Some((ids, key_failed)) = publishing.next().await {
        confirmed.extend(ids);
        failed |= key_failed;
    }
    if !confirmed.is_empty() {
        if let Err(error) = outbox.remove(&confirmed).await {
            // Published but not forgotten: they go again, and the broker drops the repeats.
            tracing::warn!(%error, "forgetting published events failed");
            return RoundReport {
                published: 0,
                failed: true,
                full,
                read,
            };
        }
    }
    RoundReport {
        published: confirmed.len(),
        failed,
        full,
        read,
    }
}
