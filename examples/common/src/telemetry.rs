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

use axum::Router;
use axum::http::{HeaderName, Request};
use ticketing_core::trace::{TRACEPARENT, TraceContext};
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::TraceLayer;
use tracing_subscriber::EnvFilter;

/// The request id header, set when the client sent none and echoed in the response.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

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

/// The process's Prometheus recorder, installed as the global `metrics` recorder on first use
/// (if another recorder was installed first, this one still renders, empty).
pub fn prometheus() -> &'static metrics_exporter_prometheus::PrometheusHandle {
    static HANDLE: std::sync::OnceLock<metrics_exporter_prometheus::PrometheusHandle> =
        std::sync::OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new()
            .set_buckets(&LATENCY_BUCKETS)
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

/// Records `http_requests_total` and `http_request_duration_seconds` for a matched route.
async fn measured(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let started = std::time::Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status).increment(1);
    metrics::histogram!("http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// Measures every matched route of `router` (call it once the routes are in).
pub fn measure(router: Router) -> Router {
    // Make sure the recorder is there before the first request is counted.
    prometheus();
    if router.has_routes() {
        router.route_layer(axum::middleware::from_fn(measured))
    } else {
        router
    }
}

/// Adds the request span and request id to a router.
pub fn traced(router: Router) -> Router {
    router
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
                let id = request
                    .headers()
                    .get(&REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                let span = tracing::info_span!(
                    "request",
                    method = %request.method(),
                    path = %request.uri().path(),
                    request_id = %id,
                    trace_id = tracing::field::Empty,
                );
                // The caller's trace goes on (an exporter parents the span on it).
                if let Some(Incoming(Some(parent))) = request.extensions().get::<Incoming>() {
                    ticketing_core::trace::adopt(&span, parent);
                }
                if let Some(context) = request.extensions().get::<TraceContext>() {
                    span.record(
                        "trace_id",
                        ticketing_core::trace::trace_id_of(&span, context),
                    );
                }
                span
            }),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeId))
        .layer(axum::middleware::from_fn(trace_context))
}

/// Request ids made like every id of the system (24 hex digits: time, process, counter):
/// unique without a system call per request, which a random UUID costs (`getrandom`, about 1 %
/// of a cached read's time in a profile).
#[derive(Clone, Copy, Default)]
struct MakeId;

impl MakeRequestId for MakeId {
    fn make_request_id<B>(&mut self, _request: &Request<B>) -> Option<RequestId> {
        axum::http::HeaderValue::from_str(&ticketing_core::Id::new().to_string())
            .ok()
            .map(RequestId::new)
    }
}

/// The trace context a request came with, if any.
#[derive(Clone, Copy)]
struct Incoming(Option<TraceContext>);

/// Continues the caller's trace (`traceparent`) or starts one, and runs the request in its
/// scope: the events the handler publishes carry it on to the listeners.
async fn trace_context(
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let incoming = request
        .headers()
        .get(TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .and_then(TraceContext::parse);
    let context = incoming.map_or_else(TraceContext::root, |parent| parent.child());
    request.extensions_mut().insert(context);
    request.extensions_mut().insert(Incoming(incoming));
    ticketing_core::trace::scope(context, next.run(request)).await
}
