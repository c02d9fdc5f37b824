//! Logs: `tracing` with a filter from `RUST_LOG` (default `info`), a span per request (method,
//! path, request id, trace id) and per handled message (subject, group, sequence, attempt, trace
//! id; opened by the SDK's listener runtime). The trace id is the W3C trace context's: taken
//! from the request's `traceparent` (or new), carried in the events' headers and through the
//! outbox, continued by the listeners of the other services ([`ticketing_core::trace`]). Request bodies, passwords and tokens are never logged.
//! `LOG_FORMAT=json` writes one JSON object per line (for log collectors); anything else, or
//! nothing, the human-readable format.
//!
//! Metrics: the SDK's (deliveries, handling and publish times, outbox backlog; see
//! [`ticketing_core::metrics`]) and the HTTP ones recorded here — `http_requests_total`
//! (`method`, `route`, `status`) and `http_request_duration_seconds` (`method`, `route`) — go
//! to one Prometheus recorder per process ([`prometheus`]), rendered at `/metrics`. `route` is
//! the route's pattern (`/api/tickets/{id}`), never the raw path, so ids do not multiply series.

use std::convert::Infallible;
use std::sync::{Arc, PoisonError, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::MatchedPath;
use axum::http::{Method, Request};
use axum::response::Response;
use tracing_subscriber::EnvFilter;

pub use crate::edge::REQUEST_ID;

/// Installs the global subscriber once; later calls do nothing.
/// With the `otel` feature and `OTEL_EXPORTER_OTLP_ENDPOINT` set, spans are also exported
/// (the `otel` module, feature `otel`); call [`shutdown_tracing`] before exiting.
pub fn init_tracing() {
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let logs = if json {
        tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_target(false)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer().with_target(false).boxed()
    };
    let subscriber = tracing_subscriber::registry().with(filter).with(logs);
    #[cfg(feature = "otel")]
    let subscriber = subscriber.with(
        crate::otel::provider_from_environment().map(|provider| crate::otel::layer(&provider)),
    );
    let _ = subscriber.try_init();
}

/// Sends the spans still buffered to the exporter, if any (the end of a `main`).
pub fn shutdown_tracing() {
    #[cfg(feature = "otel")]
    crate::otel::shutdown();
}

/// Buckets of the latency histograms, in seconds: 1 ms to 10 s.
const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Buckets of the lag histograms (an event's way from its making to its publish and to its
/// first delivery), in seconds: finer, to tell the stages of a loaded system apart.
const LAG_BUCKETS: [f64; 24] = [
    0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.125,
    0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 1.0, 2.5, 10.0, 30.0,
];

/// The process's Prometheus recorder, installed as the global `metrics` recorder on first use
/// (if another recorder was installed first, this one still renders, empty).
pub fn prometheus() -> &'static metrics_exporter_prometheus::PrometheusHandle {
    static HANDLE: std::sync::OnceLock<metrics_exporter_prometheus::PrometheusHandle> =
        std::sync::OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new()
            .set_buckets(&LATENCY_BUCKETS)
            .and_then(|builder| {
                builder.set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Suffix("_lag_seconds".into()),
                    &LAG_BUCKETS,
                )
            })
            .expect("the buckets are not empty")
            .build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed: /metrics stays empty");
        }
        // Histogram samples wait in buffers until drained into their buckets: drain them every
        // few seconds, so memory stays flat however rarely /metrics is scraped.
        let upkeep = handle.clone();
        let _ = std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(std::time::Duration::from_secs(5));
                    upkeep.run_upkeep();
                }
            });
        handle
    })
}

/// Measures every matched route of `router` (call it once the routes are in).
pub fn measure(router: Router) -> Router {
    // Make sure the recorder is there before the first request is counted.
    prometheus();
    if router.has_routes() {
        router.route_layer(MeasureLayer)
    } else {
        router
    }
}

/// Records `http_requests_total` and `http_request_duration_seconds` of a route. As a route
/// layer it is made once per route, and each instance keeps the metric handles of the
/// method and status pairs its route has answered: a request builds no label and looks up no
/// registry (each did both before, with five strings allocated per request).
#[derive(Debug, Clone, Copy)]
struct MeasureLayer;

impl<S> tower::Layer<S> for MeasureLayer {
    type Service = Measured<S>;

    fn layer(&self, inner: S) -> Measured<S> {
        Measured {
            inner,
            handles: Arc::default(),
        }
    }
}

/// A route whose answers are measured ([`MeasureLayer`]).
#[derive(Clone)]
struct Measured<S> {
    inner: S,
    handles: Arc<RouteHandles>,
}

/// The metric handles of one route, by method and status.
#[derive(Default)]
struct RouteHandles(RwLock<Vec<Handles>>);

struct Handles {
    method: Method,
    route: Box<str>,
    status: u16,
    requests: metrics::Counter,
    duration: metrics::Histogram,
}

impl RouteHandles {
    fn record(&self, method: &Method, route: &str, status: u16, took: Duration) {
        let took = took.as_secs_f64();
        let known = |handles: &Handles| {
            handles.status == status && handles.method == *method && *handles.route == *route
        };
        if let Some(handles) = self
            .0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|h| known(h))
        {
            handles.requests.increment(1);
            handles.duration.record(took);
            return;
        }
        let handles = Handles {
            method: method.clone(),
            route: route.into(),
            status,
            requests: metrics::counter!(
                "http_requests_total",
                "method" => method.as_str().to_owned(),
                "route" => route.to_owned(),
                "status" => status.to_string()
            ),
            duration: metrics::histogram!(
                "http_request_duration_seconds",
                "method" => method.as_str().to_owned(),
                "route" => route.to_owned()
            ),
        };
        handles.requests.increment(1);
        handles.duration.record(took);
        let mut known_handles = self.0.write().unwrap_or_else(PoisonError::into_inner);
        if !known_handles.iter().any(known) {
            known_handles.push(handles);
        }
    }
}

impl<S> tower::Service<Request<Body>> for Measured<S>
where
    S: tower::Service<Request<Body>, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = crate::edge::Answer;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let started = Instant::now();
        let method = request.method().clone();
        let route = request.extensions().get::<MatchedPath>().cloned();
        let handles = self.handles.clone();
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = answer.await?;
            let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
            handles.record(
                &method,
                route,
                response.status().as_u16(),
                started.elapsed(),
            );
            Ok(response)
        })
    }
}
