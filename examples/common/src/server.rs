//! Serving a service: bind, serve with the API's 404s, security headers and timeouts, and shut
//! down gracefully on SIGINT or SIGTERM (or a token): stop accepting requests and messages,
//! finish the in-flight ones (closing connections still open after the shutdown deadline),
//! settle the messages, flush the bus.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use axum::response::Response;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use ticketing_core::outbox::RelayHandle;
use ticketing_core::{Bus, ListenerHandle};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower::{Layer, ServiceExt};
use tower_http::normalize_path::NormalizePathLayer;

use crate::edge::EdgeLayer;
use crate::error::not_found;
use crate::health::Health;
use ticketing_store::Database;

/// HTTP timeouts and the shutdown deadline ([`HttpArgs`](crate::config::HttpArgs) reads them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Time to send a request's headers; then the connection is closed.
    pub header_timeout: Duration,
    /// Time to send a request's body; then 408.
    pub body_timeout: Duration,
    /// Time for a whole request; then 408.
    pub request_timeout: Duration,
    /// After the shutdown signal, time for requests in flight before connections are closed.
    pub shutdown_deadline: Duration,
    /// After the shutdown signal, time the service still accepts requests while `/readyz`
    /// answers 503.
    pub shutdown_delay: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        crate::config::HttpArgs::default().limits()
    }
}

/// How long a handler may take to read the request body: set on each request by the server,
/// read by [`JsonBody`](crate::JsonBody).
#[derive(Debug, Clone, Copy)]
pub struct BodyTimeout(pub Duration);

/// Gives a router the API's answers for unknown routes and methods (404 in the error format)
/// and the HTTP metrics of its routes; the server puts the [edge](crate::edge) (request span
/// and id, trace context, timeouts, security headers) in front of it and the operations
/// endpoints.
pub fn finish_router(router: Router) -> Router {
    crate::telemetry::measure(router)
        .fallback(not_found)
        .method_not_allowed_fallback(not_found)
}

pub use crate::edge::API_CONTENT_SECURITY_POLICY;

/// A bound service: HTTP routes plus its running listeners, and the operations endpoints
/// ([`health`](crate::health)): `/healthz`, `/readyz` and `/metrics`.
pub struct Server {
    name: &'static str,
    listener: TcpListener,
    router: Router,
    listeners: Arc<Mutex<Vec<ListenerHandle>>>,
    databases: Vec<(&'static str, Database)>,
    token: CancellationToken,
    bus: Option<Arc<dyn Bus>>,
    relays: Vec<RelayHandle>,
    limits: HttpLimits,
}

impl Server {
    /// Binds `addr` (port 0 picks a free port) for `router`; `listeners` were started with
    /// children of `token`.
    pub async fn bind(
        name: &'static str,
        addr: SocketAddr,
        router: Router,
        listeners: Vec<ListenerHandle>,
        token: CancellationToken,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await.map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("cannot listen on {addr}: {e} (set PORT or --port)"),
            )
        })?;
        Ok(Server {
            name,
            listener,
            router: finish_router(router),
            listeners: Arc::new(Mutex::new(listeners)),
            databases: Vec::new(),
            token,
            bus: None,
            relays: Vec::new(),
            limits: HttpLimits::default(),
        })
    }

    /// The HTTP timeouts and shutdown deadline (default: [`HttpLimits::default`]).
    pub fn with_limits(mut self, limits: HttpLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The bus to flush once the listeners have stopped, so their last acks reach the broker.
    pub fn with_bus(mut self, bus: Arc<dyn Bus>) -> Self {
        self.bus = Some(bus);
        self
    }

    /// A database readiness checks (`/readyz`), named by its role (`tickets`).
    pub fn with_database(mut self, name: &'static str, database: Database) -> Self {
        self.databases.push((name, database));
        self
    }

    /// An outbox relay to stop (publishing what is pending) once the listeners have stopped.
    pub fn with_relay(mut self, relay: RelayHandle) -> Self {
        self.relays.push(relay);
        self
    }

    /// The port bound.
    pub fn port(&self) -> u16 {
        self.listener
            .local_addr()
            .map(|a| a.port())
            .unwrap_or_default()
    }

    /// The token that stops the service when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.token.clone()
    }

    /// Serves until SIGINT, SIGTERM or the token; then stops listeners and returns once
    /// every in-flight request and message is finished and settled.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let Server {
            name,
            listener,
            router,
            listeners,
            databases,
            token,
            bus,
            relays,
            limits,
        } = self;
        // Not ready from the signal on; stopping `shutdown_delay` later.
        let stopping = CancellationToken::new();
        let health = Health::new(databases, bus.clone(), listeners.clone(), stopping.clone());
        let router = crate::health::routes(health).merge(router);
        let stop = token.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = stop.cancelled() => {}
                signal = shutdown_signal() => {
                    tracing::info!(service = name, signal, delay = ?limits.shutdown_delay, "shutting down");
                    stopping.cancel();
                    tokio::select! {
                        _ = stop.cancelled() => {}
                        _ = tokio::time::sleep(limits.shutdown_delay) => {}
                    }
                    stop.cancel();
                }
            }
        });
        // `/api/tickets/` is `/api/tickets`, as in the original (Express) services.
        let app =
            NormalizePathLayer::trim_trailing_slash().layer(EdgeLayer::new(limits).layer(router));
        let served = serve(name, listener, app, limits, token.clone()).await;
        token.cancel();
        let listeners =
            std::mem::take(&mut *listeners.lock().unwrap_or_else(PoisonError::into_inner));
        for handle in listeners {
            handle.stop().await;
        }
        for relay in relays {
            relay.stop().await;
        }
        if let Some(bus) = bus {
            if let Err(error) = bus.flush().await {
                tracing::warn!(service = name, %error, "flushing the bus failed");
            }
        }
        tracing::info!(service = name, "stopped");
        served
    }
}

/// Accepts connections until `token` is cancelled, then lets requests in flight finish for up
/// to the shutdown deadline and closes the connections still open.
async fn serve<S>(
    name: &'static str,
    listener: TcpListener,
    app: S,
    limits: HttpLimits,
    token: CancellationToken,
) -> std::io::Result<()>
where
    S: tower::Service<Request, Response = Response, Error = std::convert::Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(limits.header_timeout));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            () = token.cancelled() => break,
            Some(_) = connections.join_next() => {}
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(service = name, %error, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let app = app.clone().map_request(move |mut request: hyper::Request<hyper::body::Incoming>| {
                    request.extensions_mut().insert(ConnectInfo(peer));
                    request.map(axum::body::Body::new)
                });
                let connection = builder
                    .serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(app))
                    .into_owned();
                let connection = graceful.watch(connection);
                connections.spawn(async move {
                    if let Err(error) = connection.await {
                        tracing::debug!(%error, "connection ended with an error");
                    }
                });
            }
        }
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.shutdown_deadline) => {
            tracing::warn!(
                service = name,
                open = connections.len(),
                deadline = ?limits.shutdown_deadline,
                "closing connections still open at the shutdown deadline"
            );
        }
    }
    connections.shutdown().await;
    Ok(())
}

/// Completes on SIGINT or SIGTERM, naming the signal.
pub async fn shutdown_signal() -> &'static str {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => "SIGINT",
        _ = terminate => "SIGTERM",
    }
}

/// Ends a service's `main`: on error, prints the cause chain (never a backtrace) and exits
/// non-zero.
#[allow(clippy::print_stderr)]
pub fn exit_code(result: anyhow::Result<()>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
