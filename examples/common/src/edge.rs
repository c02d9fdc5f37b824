//! What every request goes through before its route, as one tower layer ([`EdgeLayer`]): the
//! caller's trace continued (`traceparent`) or a new one started, the request id (taken from
//! `x-request-id` or made, and echoed in the response), the request span, the request and body
//! timeouts (408 in the error format), the security headers, and a log line per request at
//! `debug` (`RUST_LOG=info,ticketing_common::edge=debug` turns it on; as with tower-http's
//! `TraceLayer`, the operator picks the level).
//!
//! These were seven layers (two `axum::middleware::from_fn`, tower-http's request-id, trace and
//! four set-header layers); as one they cost one boxed future per request instead of a cloned
//! service, a boxed future and a wrapped body per layer (docs/benchmarks.md has the profile and
//! the numbers).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use ticketing_core::trace::{TRACEPARENT, TraceContext};
use tracing::Instrument;

use crate::error::ApiError;
use crate::server::{BodyTimeout, HttpLimits};

/// The request id header, set when the client sent none and echoed in the response.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The policy of every response that does not set its own: JSON loads nothing and is framed
/// by no one.
pub const API_CONTENT_SECURITY_POLICY: &str = "default-src 'none'; frame-ancestors 'none'";

/// The security headers, each set unless the route set it itself (the web client sets its own
/// content security policy): `X-Content-Type-Options: nosniff`, no framing (`X-Frame-Options:
/// DENY` and `frame-ancestors 'none'`), `Referrer-Policy: no-referrer`.
const SECURITY_HEADERS: [(HeaderName, HeaderValue); 4] = [
    (
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    ),
    (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
    (
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    ),
    (
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(API_CONTENT_SECURITY_POLICY),
    ),
];

/// Sets the security headers a response does not carry yet.
pub fn set_security_headers(headers: &mut HeaderMap) {
    for (name, value) in SECURITY_HEADERS {
        if !headers.contains_key(&name) {
            headers.insert(name, value);
        }
    }
}

/// The future of a layer in front of a route: the response, boxed.
pub(crate) type Answer = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

/// The edge of a service: see the [module](self).
#[derive(Debug, Clone, Copy)]
pub struct EdgeLayer {
    limits: HttpLimits,
}

impl EdgeLayer {
    /// The edge with `limits`' request and body timeouts.
    pub fn new(limits: HttpLimits) -> Self {
        EdgeLayer { limits }
    }
}

impl<S> tower::Layer<S> for EdgeLayer {
    type Service = Edge<S>;

    fn layer(&self, inner: S) -> Edge<S> {
        Edge {
            inner,
            limits: self.limits,
        }
    }
}

/// A service behind its edge ([`EdgeLayer`]).
#[derive(Debug, Clone)]
pub struct Edge<S> {
    inner: S,
    limits: HttpLimits,
}

impl<S> tower::Service<Request> for Edge<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Answer;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        // The clone that is not known to be ready stays; the ready one serves this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let started = Instant::now();
        let incoming = request
            .headers()
            .get(TRACEPARENT)
            .and_then(|v| v.to_str().ok())
            .and_then(TraceContext::parse);
        let context = incoming.map_or_else(TraceContext::root, |parent| parent.child());
        let request_id = match request.headers().get(&REQUEST_ID) {
            Some(id) => Some(id.clone()),
            None => {
                // Made like every id of the system (time, process, counter): unique without a
                // system call, which a random UUID costs.
                let id = HeaderValue::from_str(&ticketing_core::Id::new().to_string()).ok();
                if let Some(id) = &id {
                    request.headers_mut().insert(REQUEST_ID, id.clone());
                }
                id
            }
        };
        let span = request_span(&request, request_id.as_ref(), context, incoming.as_ref());
        request.extensions_mut().insert(context);
        request
            .extensions_mut()
            .insert(BodyTimeout(self.limits.body_timeout));
        let timeout = self.limits.request_timeout;
        Box::pin(
            async move {
                let handled = tokio::time::timeout(
                    timeout,
                    ticketing_core::trace::scoped(context, inner.call(request)),
                );
                let mut response = match handled.await {
                    Ok(Ok(response)) => response,
                    Ok(Err(never)) => match never {},
                    Err(_) => ApiError::RequestTimeout.into_response(),
                };
                let headers = response.headers_mut();
                set_security_headers(headers);
                if let Some(id) = request_id {
                    if !headers.contains_key(&REQUEST_ID) {
                        headers.insert(REQUEST_ID, id);
                    }
                }
                tracing::debug!(
                    status = response.status().as_u16(),
                    latency_ms = started.elapsed().as_secs_f64() * 1e3,
                    "request finished"
                );
                Ok(response)
            }
            .instrument(span),
        )
    }
}

/// The request's span: method, path, request id and trace id (the exported span's, when an
/// exporter is installed). Nothing is formatted when the span is disabled.
fn request_span(
    request: &Request,
    request_id: Option<&HeaderValue>,
    context: TraceContext,
    incoming: Option<&TraceContext>,
) -> tracing::Span {
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        request_id = %request_id.map_or("", |id| id.to_str().unwrap_or_default()),
        trace_id = tracing::field::Empty,
    );
    if span.is_disabled() {
        return span;
    }
    // The caller's trace goes on (an exporter parents the span on it).
    if let Some(parent) = incoming {
        ticketing_core::trace::adopt(&span, parent);
    }
    span.record(
        "trace_id",
        ticketing_core::trace::trace_id_of(&span, &context),
    );
    span
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use std::time::Duration;
    use tower::{Layer, ServiceExt};

    /// A router behind the edge: `/echo` answers with the request id and trace context it
    /// saw, `/framed` sets its own policy, `/slow` sleeps a minute.
    fn app() -> Edge<Router> {
        let router = Router::new()
            .route(
                "/echo",
                get(|request: Request| async move {
                    let id = request.headers()[&REQUEST_ID].to_str().unwrap().to_owned();
                    let context = request.extensions().get::<TraceContext>().copied();
                    let current = TraceContext::current();
                    assert_eq!(context, current, "the handler runs in the request's trace");
                    format!("{id} {}", context.expect("a trace context").header())
                }),
            )
            .route(
                "/framed",
                get(|| async {
                    (
                        [(header::CONTENT_SECURITY_POLICY, "default-src 'self'")],
                        "page",
                    )
                }),
            )
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    "late"
                }),
            );
        EdgeLayer::new(HttpLimits {
            request_timeout: Duration::from_secs(10),
            ..HttpLimits::default()
        })
        .layer(router)
    }

    async fn call(request: axum::http::request::Builder) -> (Response, String) {
        let response = app()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, 1 << 16).await.unwrap();
        (
            Response::from_parts(parts, Body::empty()),
            String::from_utf8(bytes.to_vec()).unwrap(),
        )
    }

    #[tokio::test]
    async fn a_request_id_is_made_when_missing_and_echoed_either_way() {
        let (response, body) = call(Request::get("/echo")).await;
        let made = response.headers()[&REQUEST_ID].to_str().unwrap().to_owned();
        assert!(ticketing_core::Id::parse(&made).is_ok(), "{made}");
        assert!(body.starts_with(&made), "the handler saw {body}");

        let (response, body) = call(Request::get("/echo").header(&REQUEST_ID, "client-7")).await;
        assert_eq!(response.headers()[&REQUEST_ID], "client-7");
        assert!(body.starts_with("client-7 "), "{body}");
    }

    #[tokio::test]
    async fn the_caller_s_trace_goes_on_and_a_malformed_one_starts_a_new_trace() {
        let parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let (_, body) = call(Request::get("/echo").header(TRACEPARENT, parent)).await;
        let seen = body.split(' ').nth(1).unwrap();
        let seen = TraceContext::parse(seen).unwrap();
        let parent = TraceContext::parse(parent).unwrap();
        assert_eq!(seen.trace_id(), parent.trace_id());
        assert_ne!(seen.span_id(), parent.span_id(), "a child span");

        let (_, body) = call(Request::get("/echo").header(TRACEPARENT, "00-zz")).await;
        let seen = TraceContext::parse(body.split(' ').nth(1).unwrap()).unwrap();
        assert_ne!(seen.trace_id(), parent.trace_id());
    }

    #[tokio::test]
    async fn security_headers_are_set_unless_the_route_set_its_own() {
        let (response, _) = call(Request::get("/echo")).await;
        for (name, value) in SECURITY_HEADERS {
            assert_eq!(response.headers()[&name], value, "{name}");
        }
        let (response, _) = call(Request::get("/framed")).await;
        assert_eq!(
            response.headers()[header::CONTENT_SECURITY_POLICY],
            "default-src 'self'"
        );
        assert_eq!(response.headers()[header::X_FRAME_OPTIONS], "DENY");
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_past_its_time_is_a_408_with_the_edge_s_headers() {
        let (response, body) = call(Request::get("/slow").header(&REQUEST_ID, "slow-1")).await;
        assert_eq!(response.status(), 408);
        assert!(body.contains("Request timed out"), "{body}");
        assert_eq!(response.headers()[&REQUEST_ID], "slow-1");
        assert_eq!(
            response.headers()[header::X_CONTENT_TYPE_OPTIONS],
            "nosniff"
        );
    }
}
