//! The shape every service shares (zero2prod's `Application`): a service says what it is made
//! of — its state, routes and listeners — by implementing [`Service`]; [`Application`] builds,
//! binds, runs and stops any of them the same way.

use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use axum::Router;
use ticketing_core::outbox::{Outbox, RelayHandle, RelayOptions, spawn_relay};
use ticketing_core::{Bus, BusError, Id, ListenerHandle};
use ticketing_store::Database;
use tokio_util::sync::CancellationToken;

use crate::config::CommonArgs;
use crate::server::Server;

/// What a service is made of.
#[async_trait]
pub trait Service: Send + Sync + 'static {
    /// Its name, in logs (`"tickets"`).
    const NAME: &'static str;
    /// Its settings, from the environment and flags.
    type Settings: Send + Sync;
    /// What its handlers and listeners share.
    type State: Clone + Send + Sync + 'static;

    /// The options every service takes, inside its settings.
    fn common(settings: &Self::Settings) -> &CommonArgs;

    /// Connects the configured backends and makes the state.
    async fn state(settings: &Self::Settings) -> anyhow::Result<Self::State>;

    /// Its routes.
    fn router(state: Self::State) -> Router;

    /// The bus its listeners and publishers use (flushed on shutdown); none by default.
    fn bus(_state: &Self::State) -> Option<Arc<dyn Bus>> {
        None
    }

    /// The outbox its store operations commit events to; a relay publishes them to
    /// [`bus`](Self::bus). None by default.
    fn outbox(_state: &Self::State) -> Option<Arc<dyn Outbox>> {
        None
    }

    /// Its databases, by role, for readiness checks (`/readyz`). None by default.
    fn databases(_state: &Self::State) -> Vec<(&'static str, Database)> {
        Vec::new()
    }

    /// Starts its listeners; they stop when `token` is cancelled. None by default.
    async fn spawn_listeners(
        _state: &Self::State,
        _token: &CancellationToken,
    ) -> Result<Vec<ListenerHandle>, BusError> {
        Ok(Vec::new())
    }
}

/// A service, bound and listening.
pub struct Application<S> {
    server: Server,
    service: PhantomData<fn() -> S>,
}

impl<S: Service> Application<S> {
    /// Connects the configured backends, starts the listeners and binds the port.
    pub async fn build(settings: S::Settings) -> anyhow::Result<Self> {
        let state = S::state(&settings).await?;
        Self::build_with(S::common(&settings), state).await
    }

    /// Starts the listeners and binds the port for this state (tests pass in-memory state).
    pub async fn build_with(common: &CommonArgs, state: S::State) -> anyhow::Result<Self> {
        let token = CancellationToken::new();
        let listeners = S::spawn_listeners(&state, &token).await?;
        let bus = S::bus(&state);
        let databases = S::databases(&state);
        // One relay per process; replicas of the service take turns through the outbox's lease.
        let relay = match (S::outbox(&state), &bus) {
            (Some(outbox), Some(bus)) => Some(relay(S::NAME, outbox, bus.clone())),
            _ => None,
        };
        let addr = SocketAddr::new(common.host, common.port);
        let mut server = Server::bind(S::NAME, addr, S::router(state), listeners, token)
            .await?
            .with_limits(common.http.limits());
        for (name, database) in databases {
            server = server.with_database(name, database);
        }
        if let Some(bus) = bus {
            server = server.with_bus(bus);
        }
        if let Some(relay) = relay {
            server = server.with_relay(relay);
        }
        Ok(Application {
            server,
            service: PhantomData,
        })
    }

    /// The port bound.
    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// Stops the service when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.server.shutdown_token()
    }

    /// Serves until SIGINT, SIGTERM or the shutdown token; then stops the listeners once the
    /// in-flight requests and messages are finished and settled.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.run_until_stopped().await
    }
}

/// Starts the outbox relay of service `name` (one per process; replicas of the service take
/// turns through the outbox's lease). It runs until [`Server`] stops it, after the listeners,
/// so their last events go out too.
pub fn relay(name: &str, outbox: Arc<dyn Outbox>, bus: Arc<dyn Bus>) -> RelayHandle {
    spawn_relay(
        outbox,
        bus,
        format!("{name}-{}-{}", std::process::id(), Id::new()),
        RelayOptions::default(),
        CancellationToken::new(),
    )
}

/// A service's `main`: tracing, settings from the environment and flags, build, serve until
/// stopped; on error, the cause chain and a non-zero exit.
pub async fn main<S: Service>(settings: impl FnOnce() -> S::Settings) -> std::process::ExitCode {
    crate::telemetry::init_tracing();
    let run = async {
        let app = Application::<S>::build(settings()).await?;
        tracing::info!(port = app.port(), "{} service listening", S::NAME);
        app.run_until_stopped().await?;
        Ok(())
    };
    let result = run.await;
    crate::telemetry::shutdown_tracing();
    crate::server::exit_code(result)
}

/// Delivery settings of the services' listeners: eight messages at a time (the versioned
/// contract keeps concurrent events of one record correct: a version that comes early waits),
/// 32 fetched ahead, and room for 20,000 unacknowledged messages per group, so events waiting
/// for an earlier one (up to the 6-hour gap horizon) do not stop the others from flowing.
pub fn listener_options() -> ticketing_core::ListenerOptions {
    ticketing_core::ListenerOptions {
        concurrency: 8,
        prefetch: 32,
        max_ack_pending: 20_000,
        ..ticketing_core::ListenerOptions::default()
    }
}
