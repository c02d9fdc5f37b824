//! Serving a service: bind, serve with the API's 404s, and shut down gracefully on SIGINT or
//! SIGTERM (or a token): stop accepting requests and messages, finish the in-flight ones,
//! settle them, close.

use std::net::SocketAddr;

use axum::Router;
use axum::ServiceExt;
use axum::extract::Request;
use std::sync::Arc;

use ticketing_core::outbox::RelayHandle;
use ticketing_core::{Bus, ListenerHandle};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::Layer;
use tower_http::normalize_path::NormalizePathLayer;

use crate::error::not_found;

/// Gives a router the API's answers for unknown routes and methods (404 in the error format)
/// and the request span.
pub fn finish_router(router: Router) -> Router {
    crate::telemetry::traced(
        router
            .fallback(not_found)
            .method_not_allowed_fallback(not_found),
    )
}

/// A bound service: HTTP routes plus its running listeners.
pub struct Server {
    name: &'static str,
    listener: TcpListener,
    router: Router,
    listeners: Vec<ListenerHandle>,
    token: CancellationToken,
    bus: Option<Arc<dyn Bus>>,
    relays: Vec<RelayHandle>,
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
            listeners,
            token,
            bus: None,
            relays: Vec::new(),
        })
    }

    /// The bus to flush once the listeners have stopped, so their last acks reach the broker.
    pub fn with_bus(mut self, bus: Arc<dyn Bus>) -> Self {
        self.bus = Some(bus);
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
            token,
            bus,
            relays,
        } = self;
        let stop = token.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = stop.cancelled() => {}
                signal = shutdown_signal() => {
                    tracing::info!(service = name, signal, "shutting down");
                    stop.cancel();
                }
            }
        });
        // `/api/tickets/` is `/api/tickets`, as in the original (Express) services.
        let app = NormalizePathLayer::trim_trailing_slash().layer(router);
        let served = axum::serve(listener, <_ as ServiceExt<Request>>::into_make_service(app))
            .with_graceful_shutdown(token.clone().cancelled_owned())
            .await;
        token.cancel();
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
