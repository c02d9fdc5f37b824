//! The listener runtime: subscribes, decodes, calls the handler, settles (ack, nak with backoff, wait on a version gap, dead-letter), with metrics and traces.

#[allow(clippy::wildcard_imports)]
use super::*;

/// A running listener. [`stop`](Self::stop) it for a graceful shutdown; dropping the handle
/// leaves it running until its cancellation token is cancelled.
#[derive(Debug)]
pub struct ListenerHandle {
    subjects: &'static [&'static str],
    group: String,
    token: CancellationToken,
    task: JoinHandle<()>,
}

impl ListenerHandle {
    /// The subject listened to (the first, for an enum of events).
    pub fn subject(&self) -> &'static str {
        self.subjects[0]
    }

    /// The subjects listened to.
    pub fn subjects(&self) -> &'static [&'static str] {
        self.subjects
    }

    /// The queue group.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// Whether the listener stopped (cancelled, or the bus closed).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Graceful stop: take no new messages, leave the group, finish and settle the in-flight
    /// ones, then return. Nothing handled is left unacked and nothing acked is unhandled.
    pub async fn stop(self) {
        self.token.cancel();
        if let Err(error) = self.task.await {
            tracing::error!(%error, group = %self.group, "listener task failed");
        }
    }

    /// Waits until the listener stops by itself or through its token.
    pub async fn join(self) {
        if let Err(error) = self.task.await {
            tracing::error!(%error, group = %self.group, "listener task failed");
        }
    }
}

/// Subscribes `listener` to `bus` and runs it on a new task until `stop`.
///
/// The queue group exists once this returns, so every message published afterwards reaches it.
pub async fn spawn_listener<L: Listener>(
    bus: &Arc<dyn Bus>,
    listener: impl Into<Arc<L>>,
) -> Result<ListenerHandle, BusError> {
    spawn_listener_with_token(bus, listener, CancellationToken::new()).await
}

/// As [`spawn_listener`], stopping when `token` is cancelled (a service's shutdown token, or
/// a child of it).
pub async fn spawn_listener_with_token<L: Listener>(
    bus: &Arc<dyn Bus>,
    listener: impl Into<Arc<L>>,
    token: CancellationToken,
) -> Result<ListenerHandle, BusError> {
    let listener: Arc<L> = listener.into();
    let options = listener.options();
    let group = listener.queue_group().to_owned();
    let subscription = match L::Event::SUBJECTS {
        [subject] => {
            bus.subscribe(subject, &group, options.subscribe_options())
                .await?
        }
        subjects => match bus
            .subscribe_many(subjects, &group, options.subscribe_options())
            .await
        {
            Err(BusError::Unsupported(why)) => {
                // An older broker: one consumer per subject, the group's durables of before.
                tracing::info!(group, %why, "consuming each subject on its own consumer");
                crate::bus::subscribe_each(&**bus, subjects, &group, options.subscribe_options())
                    .await?
            }
            subscribed => subscribed?,
        },
    };
    let task = tokio::spawn(run(listener, subscription, options, token.clone()));
    Ok(ListenerHandle {
        subjects: L::Event::SUBJECTS,
        group,
        token,
        task,
    })
}

async fn run<L: Listener>(
    listener: Arc<L>,
    mut subscription: Box<dyn crate::bus::Subscription>,
    options: ListenerOptions,
    token: CancellationToken,
) {
    let concurrency = options.concurrency.max(1);
    let tries = Tries::default();
    let mut in_flight = FuturesUnordered::new();
    let mut failures = 0u32;
    // After a subscription error: no new messages until then, while the handlers already in
    // flight keep running (they hold connections and ack deadlines).
    let mut resume_at: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            biased;
            _ = token.cancelled() => break,
            Some(()) = in_flight.next(), if !in_flight.is_empty() => {}
            () = tokio::time::sleep_until(resume_at.unwrap_or_else(tokio::time::Instant::now)), if resume_at.is_some() => {
                resume_at = None;
            }
            next = subscription.next(), if resume_at.is_none() && in_flight.len() < concurrency => match next {
                // One at a time: handle it here, without the bookkeeping of a set of futures.
                Some(Ok(delivery)) if concurrency == 1 => {
                    failures = 0;
                    handle(&*listener, delivery, &options, &tries).await;
                }
                Some(Ok(delivery)) => {
                    failures = 0;
                    in_flight.push(handle(&*listener, delivery, &options, &tries));
                }
                Some(Err(error)) => {
                    failures = failures.saturating_add(1);
                    let pause = options.backoff.delay(failures);
                    tracing::warn!(%error, group = listener.queue_group(), ?pause, "subscription failed; retrying");
                    resume_at = Some(tokio::time::Instant::now() + pause);
                }
                None => {
                    tracing::info!(group = listener.queue_group(), subjects = ?L::Event::SUBJECTS, "subscription closed");
                    break;
                }
            },
        }
    }
    if let Err(error) = subscription.close().await {
        tracing::warn!(%error, group = listener.queue_group(), "closing the subscription failed");
    }
    while in_flight.next().await.is_some() {}
}

/// The longest pause between two tries of an event that has waited for long.
const LONG_WAIT_RETRY: Duration = Duration::from_secs(60);

/// How often this member answered each message (by sequence) with [`HandlerError::Wait`] and
/// with [`HandlerError::Retry`]: waits back off by their own count and never use up the
/// attempt budget, and the budget counts the failures this member saw, not the broker's
/// deliveries (those include waits answered by another member or before a restart, and
/// deliveries cut short by a crash, none of which is a failure of the message).
#[derive(Default)]
struct Tries(std::sync::Mutex<std::collections::HashMap<TryKey, TryCount>>);

/// A message among those a listener consumes: its subject's index in the listener's subjects
/// and its sequence (per subject on some backends).
type TryKey = (usize, u64);

#[derive(Default, Clone, Copy)]
struct TryCount {
    waits: u32,
    retries: u32,
}

impl Tries {
    /// Entries kept at most; past it the counts start over (a wait then backs off from the
    /// start again, and a failing message gets a fuller budget: both harmless).
    const LIMIT: usize = 100_000;

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<TryKey, TryCount>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts one more try of `sequence`; returns the counts so far.
    fn record(&self, sequence: TryKey, update: impl FnOnce(&mut TryCount)) -> TryCount {
        let mut counts = self.lock();
        if counts.len() >= Self::LIMIT && !counts.contains_key(&sequence) {
            counts.clear();
        }
        let count = counts.entry(sequence).or_default();
        update(count);
        *count
    }

    /// Counts one more wait of `sequence`; returns how many so far.
    fn wait(&self, sequence: TryKey) -> u32 {
        self.record(sequence, |c| c.waits = c.waits.saturating_add(1))
            .waits
    }

    /// Counts one more retryable failure of `sequence`; returns how many so far.
    fn retry(&self, sequence: TryKey) -> u32 {
        self.record(sequence, |c| c.retries = c.retries.saturating_add(1))
            .retries
    }

    fn forget(&self, sequence: TryKey) {
        self.lock().remove(&sequence);
    }
}

async fn handle<L: Listener>(
    listener: &L,
    delivery: Delivery,
    options: &ListenerOptions,
    tries: &Tries,
) {
    // The trace of the publisher goes on here (a new one when the message carries none).
    let parent = delivery
        .headers()
        .get(crate::trace::TRACEPARENT)
        .and_then(|h| crate::trace::TraceContext::parse(h));
    let trace = parent.map_or_else(crate::trace::TraceContext::root, |parent| parent.child());
    let span = tracing::info_span!(
        "message",
        subject = delivery.subject(),
        group = delivery.group(),
        sequence = delivery.sequence(),
        attempt = delivery.attempt(),
        trace_id = tracing::field::Empty,
    );
    if let Some(parent) = &parent {
        crate::trace::adopt(&span, parent);
    }
    span.record("trace_id", crate::trace::trace_id_of(&span, &trace));
    let started = tokio::time::Instant::now();
    let group = listener.queue_group();
    // The subject as a static name, for the metrics' labels, and its index, for the tries.
    let (index, subject) = match L::Event::SUBJECTS {
        [subject] => (0, *subject),
        subjects => subjects
            .iter()
            .enumerate()
            .find(|(_, s)| **s == delivery.subject())
            .map_or((0, subjects[0]), |(i, s)| (i, *s)),
    };
    let measured = |outcome| {
        crate::metrics::delivery(subject, group, outcome, started.elapsed());
    };
    let handled = async move {
        let event =
            match L::Event::decode(delivery.subject(), delivery.payload(), delivery.headers()) {
                Ok(event) => event,
                Err(error) => {
                    let reason = format!("undecodable payload: {error}");
                    tracing::error!(%reason, "dead-lettering message");
                    settle(delivery.term(&reason).await);
                    measured(DeliveryOutcome::DeadLettered);
                    return;
                }
            };
        let outcome = {
            let ctx = MessageContext {
                delivery: &delivery,
            };
            AssertUnwindSafe(listener.on_message(event, &ctx))
                .catch_unwind()
                .await
        };
        let sequence = (index, delivery.sequence());
        if !matches!(
            outcome,
            Ok(Err(HandlerError::Wait { .. } | HandlerError::Retry { .. }))
        ) {
            tries.forget(sequence);
        }
        match outcome {
            Ok(Ok(())) => {
                settle(delivery.ack().await);
                measured(DeliveryOutcome::Acked);
            }
            Ok(Err(HandlerError::Wait { source })) => match delivery.age() {
                Some(age) if age >= options.gap_horizon => {
                    tries.forget(sequence);
                    let reason = format!(
                        "waited {}s, past the gap horizon of {}s: {source}",
                        age.as_secs(),
                        options.gap_horizon.as_secs()
                    );
                    tracing::error!(%reason, "dead-lettering message");
                    settle(delivery.term(&reason).await);
                    measured(DeliveryOutcome::DeadLettered);
                }
                age => {
                    let waited = tries.wait(sequence);
                    let delay = options
                        .gap_backoff
                        .delay(waited)
                        .max(age.map_or(Duration::ZERO, |age| (age / 20).min(LONG_WAIT_RETRY)));
                    // Waiting is routine; say so now and then, not on every retry.
                    if waited.is_power_of_two() && waited >= 64 {
                        tracing::info!(reason = %source, waited, ?age, ?delay, "still waiting");
                    } else {
                        tracing::debug!(reason = %source, waited, ?delay, "waiting");
                    }
                    settle(delivery.nak(Some(delay)).await);
                    measured(DeliveryOutcome::Waited);
                }
            },
            Ok(Err(HandlerError::Retry { source, after })) => {
                // The failures this member saw: waits, and deliveries lost to a crash or
                // handled elsewhere, do not count against the budget.
                let attempt = tries.retry(sequence);
                if attempt >= options.max_deliver {
                    tries.forget(sequence);
                    let reason = format!("gave up after {attempt} attempts: {source}");
                    tracing::error!(%reason, "dead-lettering message");
                    settle(delivery.term(&reason).await);
                    measured(DeliveryOutcome::DeadLettered);
                } else {
                    let delay = after.unwrap_or_else(|| options.backoff.delay(attempt));
                    // A first retry is routine (a version gap, a conflict); repeated ones are not.
                    if attempt == 1 {
                        tracing::debug!(error = %source, ?delay, "handler failed; will retry");
                    } else {
                        tracing::warn!(error = %source, ?delay, "handler failed again; will retry");
                    }
                    settle(delivery.nak(Some(delay)).await);
                    measured(DeliveryOutcome::Retried);
                }
            }
            Ok(Err(HandlerError::Permanent { source })) => {
                let reason = format!("permanent failure: {source}");
                tracing::error!(%reason, "dead-lettering message");
                settle(delivery.term(&reason).await);
                measured(DeliveryOutcome::DeadLettered);
            }
            Err(panic) => {
                let reason = format!("handler panicked: {}", panic_message(&*panic));
                tracing::error!(%reason, "dead-lettering message");
                settle(delivery.term(&reason).await);
                measured(DeliveryOutcome::DeadLettered);
            }
        }
    }
    .instrument(span);
    crate::trace::scope(trace, handled).await
}

fn settle(result: Result<(), BusError>) {
    if let Err(error) = result {
        // The message stays unsettled: the broker redelivers it after the ack wait.
        tracing::warn!(%error, "settling a message failed; it will be redelivered");
    }
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}
