//! The observing steps: the delivery metrics and the span that continues the publisher's
//! trace.

#[allow(clippy::wildcard_imports)]
use super::*;

/// Counts each delivery by subject, group and outcome, with its handling time, and records the
/// first delivery's lag behind the event's making. The handling time counts from when the
/// backend took the delivery if it says ([`Delivery::with_taken`]), else from this step.
#[derive(Debug, Clone, Copy, Default)]
pub struct MetricsLayer;

impl<S> tower::Layer<S> for MetricsLayer {
    type Service = Metrics<S>;
    fn layer(&self, inner: S) -> Metrics<S> {
        Metrics {
            inner,
            registered: Vec::new(),
        }
    }
}

/// See [`MetricsLayer`].
#[derive(Debug, Clone)]
pub struct Metrics<S> {
    inner: S,
    /// The metrics of each subject seen, registered at its first delivery.
    registered: Vec<(&'static str, Arc<crate::metrics::DeliveryMetrics>)>,
}

impl<S> tower::Service<Incoming> for Metrics<S>
where
    S: tower::Service<Incoming, Response = Settlement, Error = Infallible>,
{
    type Response = Settlement;
    type Error = Infallible;
    type Future = Measured<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, incoming: Incoming) -> Self::Future {
        let metrics = match self
            .registered
            .iter()
            .find(|(subject, _)| *subject == incoming.subject)
        {
            Some((_, metrics)) => metrics.clone(),
            None => {
                let metrics = Arc::new(crate::metrics::DeliveryMetrics::register(
                    incoming.subject,
                    &incoming.group,
                ));
                self.registered.push((incoming.subject, metrics.clone()));
                metrics
            }
        };
        if incoming.attempt == 1 {
            if let Some(lag) = crate::metrics::age(&incoming.message.headers) {
                metrics.record_lag(lag);
            }
        }
        // From the take, when the backend read the clock for it: one reading fewer.
        let started = incoming.taken.unwrap_or_else(Instant::now);
        Measured {
            settled: self.inner.call(incoming),
            metrics,
            started,
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`Metrics`]: the settlement, counted with its handling time.
    pub struct Measured<F> {
        #[pin]
        settled: F,
        metrics: Arc<crate::metrics::DeliveryMetrics>,
        started: Instant,
    }
}

impl<F: Future<Output = Result<Settlement, Infallible>>> Future for Measured<F> {
    type Output = Result<Settlement, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let settled = std::task::ready!(this.settled.poll(cx));
        if let Ok(settlement) = &settled {
            this.metrics
                .record(settlement.outcome(), this.started.elapsed());
        }
        Poll::Ready(settled)
    }
}

// -------------------------------------------------------------------------------------------
// Trace.

/// The handling in the trace the publisher's `traceparent` names (a new one when it names
/// none), so what the handler publishes continues it; and, when anything records INFO spans (a
/// subscriber's filter, or a `log` logger through `tracing`'s fallback), in a span per delivery
/// (subject, group, sequence, attempt, trace id). Nothing is made for a span nobody records.
#[derive(Debug, Clone, Copy, Default)]
pub struct TraceLayer;

impl<S> tower::Layer<S> for TraceLayer {
    type Service = Trace<S>;
    fn layer(&self, inner: S) -> Trace<S> {
        Trace(inner)
    }
}

/// See [`TraceLayer`].
#[derive(Debug, Clone)]
pub struct Trace<S>(S);

impl<S> tower::Service<Incoming> for Trace<S>
where
    S: tower::Service<Incoming, Response = Settlement, Error = Infallible>,
{
    type Response = Settlement;
    type Error = Infallible;
    /// Instrumented with the span when something records it; otherwise the span is not made
    /// (making and entering a disabled span still costs: `tracing`'s `log` fallback formats
    /// its fields), while the trace context is still scoped for what the handler publishes.
    type Future = crate::trace::Scoped<
        futures::future::Either<tracing::instrument::Instrumented<S::Future>, S::Future>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, incoming: Incoming) -> Self::Future {
        let parent = incoming
            .headers()
            .get(crate::trace::TRACEPARENT)
            .and_then(|h| crate::trace::TraceContext::parse(h));
        let trace = parent.map_or_else(crate::trace::TraceContext::root, |parent| parent.child());
        // A span only when something records it (making a disabled one still costs).
        let span = info_spans_recorded()
            .then(|| {
                tracing::info_span!(
                    "message",
                    subject = incoming.subject,
                    group = incoming.group(),
                    sequence = incoming.sequence(),
                    attempt = incoming.attempt(),
                    trace_id = tracing::field::Empty,
                )
            })
            .filter(|span| !span.is_disabled());
        let Some(span) = span else {
            // What the handler publishes still continues this trace.
            return crate::trace::scoped(
                trace,
                futures::future::Either::Right(self.0.call(incoming)),
            );
        };
        if let Some(parent) = &parent {
            crate::trace::adopt(&span, parent);
        }
        span.record("trace_id", crate::trace::trace_id_of(&span, &trace));
        // The handler's events continue this trace.
        let settled = span.in_scope(|| self.0.call(incoming));
        crate::trace::scoped(
            trace,
            futures::future::Either::Left(settled.instrument(span)),
        )
    }
}

/// Whether anything could record an INFO span: a `tracing` subscriber whose filter takes INFO,
/// or, through `tracing`'s `log` fallback (when no subscriber is set), a `log` logger at INFO.
/// Both are one atomic load.
fn info_spans_recorded() -> bool {
    tracing::Level::INFO <= tracing::level_filters::LevelFilter::current()
        || log::max_level() >= log::LevelFilter::Info
}

#[cfg(test)]
mod tests {
    use super::*;
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    struct Unsettled;

    #[async_trait::async_trait]
    impl Acknowledger for Unsettled {
        async fn ack(&self) -> Result<(), BusError> {
            Ok(())
        }
        async fn nak(&self, _: Option<Duration>) -> Result<(), BusError> {
            Ok(())
        }
        async fn term(&self, _: &str) -> Result<(), BusError> {
            Ok(())
        }
        async fn progress(&self) -> Result<(), BusError> {
            Ok(())
        }
    }

    /// The handling times `MetricsLayer` records for a delivery taken `before` it reaches the
    /// step (stamped with the take when `stamped`), over a handler that answers at once.
    async fn handling_recorded(before: Duration, stamped: bool) -> Vec<f64> {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let message = Message {
            subject: "thing:made".into(),
            payload: bytes::Bytes::from_static(b"{}"),
            headers: Headers::new(),
            sequence: 1,
        };
        let delivery = Delivery::with_acker(Arc::new(message), Arc::from("g"), 1, Unsettled);
        let delivery = if stamped {
            delivery.with_taken(Instant::now())
        } else {
            delivery
        };
        tokio::time::advance(before).await;
        let (incoming, _) = Incoming::of(delivery, &["thing:made"]);
        let mut step = tower::Layer::layer(
            &MetricsLayer,
            tower::service_fn(|_: Incoming| async { Ok::<_, Infallible>(Settlement::Ack) }),
        );
        // The step registers its handles at the call, with the recorder of that moment.
        let settled =
            metrics::with_local_recorder(&recorder, || tower::Service::call(&mut step, incoming));
        assert_eq!(settled.await, Ok(Settlement::Ack));
        snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .filter(|(key, ..)| key.key().name() == crate::metrics::HANDLING)
            .flat_map(|(.., value)| match value {
                DebugValue::Histogram(values) => values.into_iter().map(f64::from).collect(),
                _ => Vec::new(),
            })
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn the_handling_time_counts_from_the_take_when_the_backend_stamps_it() {
        assert_eq!(
            handling_recorded(Duration::from_secs(3), true).await,
            vec![3.0]
        );
        assert_eq!(
            handling_recorded(Duration::from_secs(3), false).await,
            vec![0.0]
        );
    }
}
