//! The listener runtime: subscribes, decodes, calls the handler, settles (ack, nak with backoff, wait on a version gap, dead-letter), with metrics and traces.

#[allow(clippy::wildcard_imports)]
use super::*;

/// A running listener. [`stop`](Self::stop) it for a graceful shutdown; dropping the handle
/// leaves it running until its cancellation token is cancelled.
#[derive(Debug)]
pub struct ListenerHandle {
    subjects: &'static [&'static str],
    group: String,
    task: Task,
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
        self.task.stop(&format!("listener of {}", self.group)).await;
    }

    /// Waits until the listener stops by itself or through its token.
    pub async fn join(self) {
        self.task.join(&format!("listener of {}", self.group)).await;
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
    spawn_with_layers(bus, listener.into(), token, &[]).await
}

/// As [`spawn_listener_with_token`], with `layers` in its pipeline (a router's).
pub(super) async fn spawn_with_layers<L: Listener>(
    bus: &Arc<dyn Bus>,
    listener: Arc<L>,
    token: CancellationToken,
    layers: &[pipeline::PipeLayer],
) -> Result<ListenerHandle, BusError> {
    let options = listener.options();
    let group = listener.queue_group().to_owned();
    let subscription = match L::Event::SUBJECTS {
        subjects if options.ordered => {
            bus.subscribe_ordered(subjects, &group, options.subscribe_options())
                .await?
        }
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
    let stack = pipeline::stack(listener.clone(), options, layers);
    let work = run(listener, stack, subscription, options, token.clone());
    Ok(ListenerHandle {
        subjects: L::Event::SUBJECTS,
        group,
        task: Task::spawn(token, work),
    })
}

/// How many deliveries taken without waiting a listener handles between two yields to the
/// scheduler. Measured (`cargo bench --bench bus`): yielding through tokio's budget (every 128)
/// cost the in-memory bus 10 % of its throughput against every 512.
const YIELD_EVERY: u32 = 512;

async fn run<L: Listener>(
    listener: Arc<L>,
    mut stack: pipeline::Stack<L>,
    mut subscription: Box<dyn crate::bus::Subscription>,
    options: ListenerOptions,
    token: CancellationToken,
) {
    let concurrency = options.concurrency.max(1);
    let subjects = L::Event::SUBJECTS;
    let mut in_flight = FuturesUnordered::new();
    let mut failures = 0u32;
    let mut taken = 0u32;
    // Made once: a loop turn creates no timer, clock read or cancellation waiter.
    let mut cancelled = std::pin::pin!(token.cancelled());
    'taking: loop {
        if token.is_cancelled() {
            break;
        }
        // Handlers in flight that can finish now do so (and settle) before another message is
        // taken, as when each took its turn in the select below.
        // (An empty set is not polled: polling registers the task's waker each time.)
        while !in_flight.is_empty()
            && matches!(
                futures::poll!(in_flight.next()),
                std::task::Poll::Ready(Some(()))
            )
        {}
        // What the subscription has ready is taken without a future; otherwise wait for a
        // delivery, a handler to finish, or the stop.
        let ready = if in_flight.len() < concurrency {
            subscription.try_next()
        } else {
            None
        };
        let next = match ready {
            Some(next) => {
                // A backlog taken without awaiting still lets the other tasks of this thread
                // run, every YIELD_EVERY deliveries: often enough to be fair (well under a
                // millisecond of a fast handler), seldom enough that the yield's cost (the
                // scheduler polls its driver and may wake a worker) stays off each message.
                taken = taken.wrapping_add(1);
                if taken % YIELD_EVERY == 0 {
                    tokio::task::yield_now().await;
                }
                Some(next)
            }
            None => tokio::select! {
                biased;
                () = &mut cancelled => break 'taking,
                Some(()) = in_flight.next(), if !in_flight.is_empty() => None,
                next = subscription.next(), if in_flight.len() < concurrency => match next {
                    Some(next) => Some(next),
                    None => {
                        tracing::info!(group = listener.queue_group(), subjects = ?L::Event::SUBJECTS, "subscription closed");
                        break 'taking;
                    }
                },
            },
        };
        match next {
            None => {}
            Some(Ok(delivery)) => {
                failures = 0;
                // A step may ask to wait (a concurrency limit of the user's): the handlers in
                // flight go on meanwhile.
                loop {
                    tokio::select! {
                        biased;
                        _ = std::future::poll_fn(|cx| tower::Service::poll_ready(&mut stack, cx)) => break,
                        Some(()) = in_flight.next(), if !in_flight.is_empty() => {}
                    }
                }
                let handled = pipeline::handle(&mut stack, delivery, subjects);
                if concurrency == 1 {
                    // One at a time: handle it here, without the bookkeeping of a set.
                    handled.await;
                } else {
                    in_flight.push(handled);
                }
            }
            Some(Err(error)) => {
                failures = failures.saturating_add(1);
                let pause = options.backoff.delay(failures);
                tracing::warn!(%error, group = listener.queue_group(), ?pause, "subscription failed; retrying");
                // No new messages until then, while the handlers already in flight keep
                // running (they hold connections and ack deadlines).
                let mut resume = std::pin::pin!(tokio::time::sleep(pause));
                loop {
                    tokio::select! {
                        biased;
                        () = &mut cancelled => break 'taking,
                        Some(()) = in_flight.next(), if !in_flight.is_empty() => {}
                        () = &mut resume => break,
                    }
                }
            }
        }
    }
    if let Err(error) = subscription.close().await {
        tracing::warn!(%error, group = listener.queue_group(), "closing the subscription failed");
    }
    while in_flight.next().await.is_some() {}
}
