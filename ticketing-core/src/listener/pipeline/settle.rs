//! The settle step: the handler's result turned into an ack, a nak with backoff, or a dead
//! letter, by the listener's options.

#[allow(clippy::wildcard_imports)]
use super::*;

/// Turns the handler's result into a [`Settlement`] by the listener's options: `Ok` acks; a
/// wait naks with the capped gap backoff until the message is older than the gap horizon; a
/// retry naks with the backoff until the member saw `max_deliver` failures; the rest
/// dead-letters, each with its reason logged.
#[derive(Clone)]
pub struct SettleLayer {
    policy: Arc<Policy>,
}

/// The options a [`Settle`] decides by and the tries it counted, shared by its futures (a
/// pointer in each, not a copy of the options).
struct Policy {
    options: ListenerOptions,
    tries: Tries,
}

impl SettleLayer {
    /// The decision under `options`, counting the tries of this listener's messages.
    pub fn new(options: ListenerOptions) -> Self {
        SettleLayer {
            policy: Arc::new(Policy {
                options,
                tries: Tries::default(),
            }),
        }
    }
}

impl<S> tower::Layer<S> for SettleLayer {
    type Service = Settle<S>;
    fn layer(&self, inner: S) -> Settle<S> {
        Settle {
            inner,
            policy: self.policy.clone(),
        }
    }
}

/// See [`SettleLayer`].
#[derive(Clone)]
pub struct Settle<S> {
    inner: S,
    policy: Arc<Policy>,
}

/// The longest pause between two tries of an event that has waited for long.
const LONG_WAIT_RETRY: Duration = Duration::from_secs(60);

impl<S> tower::Service<Incoming> for Settle<S>
where
    S: tower::Service<Incoming, Response = (), Error = HandlerError>,
{
    type Response = Settlement;
    type Error = Infallible;
    type Future = Settling<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // A step that cannot take the message now is waited for; one that failed is the
        // message's failure, decided at `call`.
        match self.inner.poll_ready(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(_) => Poll::Ready(Ok(())),
        }
    }

    fn call(&mut self, incoming: Incoming) -> Self::Future {
        let (key, published) = (incoming.key(), incoming.published);
        Settling {
            handled: self.inner.call(incoming),
            key,
            published,
            policy: self.policy.clone(),
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`Settle`]: the handling, then the decision.
    pub struct Settling<F> {
        #[pin]
        handled: F,
        key: (usize, u64),
        published: Option<Instant>,
        policy: Arc<Policy>,
    }
}

impl<F: Future<Output = Result<(), HandlerError>>> Future for Settling<F> {
    type Output = Result<Settlement, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let outcome = std::task::ready!(this.handled.poll(cx));
        Poll::Ready(Ok(decide(
            outcome,
            *this.key,
            *this.published,
            &this.policy.options,
            &this.policy.tries,
        )))
    }
}

fn decide(
    outcome: Result<(), HandlerError>,
    key: (usize, u64),
    published: Option<Instant>,
    options: &ListenerOptions,
    tries: &Tries,
) -> Settlement {
    if !matches!(
        outcome,
        Err(HandlerError::Wait { .. } | HandlerError::Retry { .. })
    ) {
        tries.forget(key);
    }
    let dead = |reason: String| {
        tracing::error!(%reason, "dead-lettering message");
        Settlement::DeadLetter(reason)
    };
    match outcome {
        Ok(()) => Settlement::Ack,
        // How long ago the broker stored it: read the clock only for a wait.
        Err(HandlerError::Wait { source }) => {
            match published.map(|at| Instant::now().saturating_duration_since(at)) {
                Some(age) if age >= options.gap_horizon => {
                    tries.forget(key);
                    dead(format!(
                        "waited {}s, past the gap horizon of {}s: {source}",
                        age.as_secs(),
                        options.gap_horizon.as_secs()
                    ))
                }
                age => {
                    let waited = tries.wait(key);
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
                    Settlement::Wait(delay)
                }
            }
        }
        Err(HandlerError::Retry { source, after }) => {
            // The failures this member saw: waits, and deliveries lost to a crash or handled
            // elsewhere, do not count against the budget.
            let attempt = tries.retry(key);
            if attempt >= options.max_deliver {
                tries.forget(key);
                dead(format!("gave up after {attempt} attempts: {source}"))
            } else {
                let delay = after.unwrap_or_else(|| options.backoff.delay(attempt));
                // A first retry is routine (a version gap, a conflict); repeated ones are not.
                if attempt == 1 {
                    tracing::debug!(error = %source, ?delay, "handler failed; will retry");
                } else {
                    tracing::warn!(error = %source, ?delay, "handler failed again; will retry");
                }
                Settlement::Retry(delay)
            }
        }
        Err(HandlerError::Permanent { source }) => dead(format!("permanent failure: {source}")),
    }
}

/// How often this member answered each message with [`HandlerError::Wait`] and with
/// [`HandlerError::Retry`]: waits back off by their own count and never use up the attempt
/// budget, and the budget counts the failures this member saw, not the broker's deliveries
/// (those include waits answered by another member or before a restart, and deliveries cut
/// short by a crash, none of which is a failure of the message).
#[derive(Default)]
struct Tries {
    counts: std::sync::Mutex<std::collections::HashMap<(usize, u64), TryCount>>,
    /// Whether `counts` may hold anything: most deliveries succeed at once, and forgetting
    /// then takes no lock.
    any: std::sync::atomic::AtomicBool,
}

#[derive(Default, Clone, Copy)]
struct TryCount {
    waits: u32,
    retries: u32,
}

impl Tries {
    /// Entries kept at most; past it the counts start over (a wait then backs off from the
    /// start again, and a failing message gets a fuller budget: both harmless).
    const LIMIT: usize = 100_000;

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<(usize, u64), TryCount>> {
        self.counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn record(&self, key: (usize, u64), update: impl FnOnce(&mut TryCount)) -> TryCount {
        let mut counts = self.lock();
        if counts.len() >= Self::LIMIT && !counts.contains_key(&key) {
            counts.clear();
        }
        let count = counts.entry(key).or_default();
        update(count);
        self.any.store(true, std::sync::atomic::Ordering::Release);
        *count
    }

    fn wait(&self, key: (usize, u64)) -> u32 {
        self.record(key, |c| c.waits = c.waits.saturating_add(1))
            .waits
    }

    fn retry(&self, key: (usize, u64)) -> u32 {
        self.record(key, |c| c.retries = c.retries.saturating_add(1))
            .retries
    }

    fn forget(&self, key: (usize, u64)) {
        if !self.any.load(std::sync::atomic::Ordering::Acquire) {
            return;
        }
        let mut counts = self.lock();
        counts.remove(&key);
        if counts.is_empty() {
            self.any.store(false, std::sync::atomic::Ordering::Release);
        }
    }
}
