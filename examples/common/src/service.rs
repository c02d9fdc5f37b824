//! The shape every service shares (zero2prod's `Application`): a service says what it is made
//! of — its state, routes and listeners — by implementing [`Service`]; [`Application`] builds,
//! binds, runs and stops any of them the same way.

use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use axum::Router;
use ticketing_bus::AnyBus;
use ticketing_core::listener;
use ticketing_core::outbox::{Outbox, RelayHandle, RelayOptions, spawn_relay};
use ticketing_core::{Bus, BusError, Clock, Id, ListenerHandle};
use ticketing_store::Database;
use tokio_util::sync::CancellationToken;

use crate::config::ListenerOrder;
use crate::config::{CommonArgs, ServiceSettings};
use crate::server::Server;
use crate::session::SessionKeys;

/// What a process hands every service it runs: the bus and the clock, shared by all the
/// services in it. A service alone gets its own ([`Service::state`]); the all-in-one app hands
/// the same to each ([`Service::state_on`]).
#[derive(Clone)]
pub struct Shared {
    /// The bus; none for a process whose services use none.
    pub bus: Option<AnyBus>,
    /// Where the time comes from.
    pub clock: Clock,
    /// Whether session cookies are `Secure` unless configured (`SECURE_COOKIES`): a service
    /// behind a TLS ingress, yes; the all-in-one serving plain HTTP itself, no.
    pub secure_cookies: bool,
}

impl Shared {
    /// The session keys from `common` (`JWT_KEY`), with this process's cookie default and
    /// clock.
    pub fn session_keys(&self, common: &CommonArgs) -> anyhow::Result<SessionKeys> {
        Ok(common
            .session_keys(self.secure_cookies)?
            .with_clock(self.clock.clone()))
    }

    /// The bus, for a service that needs one.
    pub fn bus(&self) -> anyhow::Result<&AnyBus> {
        self.bus
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("this service needs a bus and the process has none"))
    }
}

/// A service's part of the OpenAPI document, and where it is served.
#[derive(Clone, Copy, Debug)]
pub struct Document {
    /// The path it is served at (`/api/tickets/openapi.json`).
    pub path: &'static str,
    /// The document (a `utoipa::OpenApi` derive's `openapi`).
    pub api: fn() -> utoipa::openapi::OpenApi,
}

/// What the process runs for a service's state beside its routes: the bus its listeners and
/// publishers use (flushed on shutdown), the outbox its store operations commit events to (a
/// relay publishes them to that bus), its databases by role (checked by `/readyz`).
#[derive(Clone, Default)]
pub struct Parts {
    /// The bus.
    pub bus: Option<Arc<dyn Bus>>,
    /// The outbox.
    pub outbox: Option<Arc<dyn Outbox>>,
    /// The databases, by role.
    pub databases: Vec<(&'static str, Database)>,
}

impl Parts {
    /// Adds the database of `role`.
    pub fn database(mut self, role: &'static str, database: &Database) -> Self {
        self.databases.push((role, database.clone()));
        self
    }

    /// The parts of a service with one database of `role`, whose outbox its stores commit to,
    /// and the bus its relay publishes on.
    pub fn of(role: &'static str, database: &Database, bus: &Arc<dyn Bus>) -> Self {
        Parts::default()
            .database(role, database)
            .bus(bus)
            .outbox(&database.outbox())
    }

    /// Sets the bus.
    pub fn bus(mut self, bus: &Arc<dyn Bus>) -> Self {
        self.bus = Some(bus.clone());
        self
    }

    /// Sets the outbox.
    pub fn outbox(mut self, outbox: &Arc<dyn Outbox>) -> Self {
        self.outbox = Some(outbox.clone());
        self
    }
}

/// What a service is made of.
#[async_trait]
pub trait Service: Send + Sync + 'static {
    /// Its name, in logs (`"tickets"`).
    const NAME: &'static str;
    /// Its settings, from the environment and flags (declared with
    /// [`service_settings!`](crate::service_settings)).
    type Settings: ServiceSettings + Send + Sync;
    /// What its handlers and listeners share.
    type State: Clone + Send + Sync + 'static;

    /// Whether it uses the bus (a service alone connects one only then).
    const USES_BUS: bool = true;

    /// Whether it reads sessions (then `JWT_KEY` is required, checked before anything is
    /// connected).
    const USES_SESSIONS: bool = true;

    /// Makes the state on what the process shares: opens its own database, checks what it needs
    /// of the bus, reads the time from the shared clock. Every decision of the service (its
    /// windows, its retention checks) is made here, alone or inside the all-in-one app.
    async fn state_on(settings: &Self::Settings, shared: &Shared) -> anyhow::Result<Self::State>;

    /// Connects the configured bus (if it uses one) and makes the state on it, with the
    /// system's clock and `Secure` cookies by default: the service alone.
    async fn state(settings: &Self::Settings) -> anyhow::Result<Self::State> {
        // Fail on a missing JWT_KEY before connecting anything.
        if Self::USES_SESSIONS {
            settings.common().session_keys(true)?;
        }
        let bus = if Self::USES_BUS {
            Some(settings.common().backends.connect_bus().await?)
        } else {
            None
        };
        let shared = Shared {
            bus,
            clock: Clock::system(),
            secure_cookies: true,
        };
        Self::state_on(settings, &shared).await
    }

    /// Its part of the OpenAPI document and where its [`router`](Self::router) serves it;
    /// none by default.
    const DOCUMENT: Option<Document> = None;

    /// Its part of the OpenAPI document (the all-in-one app merges them); empty without a
    /// [`DOCUMENT`](Self::DOCUMENT).
    fn openapi() -> utoipa::openapi::OpenApi {
        Self::DOCUMENT
            .map(|document| (document.api)())
            .unwrap_or_default()
    }

    /// Its API's routes; none by default (a service of listeners only still serves the
    /// operations endpoints).
    fn routes(_state: Self::State) -> Router {
        Router::new()
    }

    /// What it serves: its [`routes`](Self::routes), and its document at
    /// [`DOCUMENT`](Self::DOCUMENT).
    fn router(state: Self::State) -> Router {
        // The events its handlers make name it as their `ce-source`.
        let routes = Self::routes(state).layer(SourceLayer(Self::NAME));
        match Self::DOCUMENT {
            Some(document) => routes.merge(crate::openapi::document_route(
                document.path,
                Self::openapi(),
            )),
            None => routes,
        }
    }

    /// Its bus, outbox and databases; none by default.
    fn parts(_state: &Self::State) -> Parts {
        Parts::default()
    }

    /// Its listeners, registered on one router (its queue group and options given once);
    /// none by default. [`spawn_listeners`](Self::spawn_listeners) runs them on the bus of its
    /// [`parts`](Self::parts).
    fn listeners(_state: &Self::State) -> Option<listener::Router> {
        None
    }

    /// Starts background work beside its listeners (the payments' repair of pending
    /// attempts); it stops when `token` is cancelled. None by default.
    fn background(_state: &Self::State, _token: &CancellationToken) {}

    /// Whether its listeners of several events take them per key when the process asks
    /// ([`ListenerOrder::Key`]); yes by default. A waiting event holds only its own key, so a
    /// handler may wait for an event of another key (the tickets service waits for the
    /// cancellation of the order that holds a ticket before another order takes it).
    const ORDER_BY_KEY: bool = true;

    /// Starts its listeners, in `order`, and its background work; they stop when `token` is
    /// cancelled.
    async fn spawn_listeners(
        state: &Self::State,
        order: ListenerOrder,
        token: &CancellationToken,
    ) -> Result<Vec<ListenerHandle>, BusError> {
        // Listeners register their metrics when they start: the recorder comes first.
        crate::telemetry::prometheus();
        Self::background(state, token);
        match (Self::listeners(state), Self::parts(state).bus) {
            (Some(router), Some(bus)) => {
                // Per key: the listeners of several events of one record (the replicas), whose
                // events overtake each other across subjects. A listener of one subject keeps
                // its order of arrival (the expiration timers hold each order's event until its
                // window passes: held in a partition, each would keep its share of the
                // partition's unacknowledged messages busy).
                let by_key = Self::ORDER_BY_KEY && order == ListenerOrder::Key;
                router
                    .source(Self::NAME)
                    .ordered_if(|subjects| by_key && subjects.len() > 1)
                    .spawn(&bus, token)
                    .await
            }
            (Some(router), None) => Err(BusError::backend(
                "none",
                format!(
                    "the {} service has listeners for {:?} and no bus in its parts",
                    Self::NAME,
                    router.subjects()
                ),
            )),
            (None, _) => Ok(Vec::new()),
        }
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
        Self::build_with(settings.common(), state).await
    }

    /// Starts the listeners and binds the port for this state (tests pass in-memory state).
    pub async fn build_with(common: &CommonArgs, state: S::State) -> anyhow::Result<Self> {
        // Events made outside its routes and listeners (background work) name it too.
        ticketing_core::envelope::set_default_source(S::NAME);
        let token = CancellationToken::new();
        let order = common.backends.listener_order;
        let listeners = S::spawn_listeners(&state, order, &token).await?;
        let addr = SocketAddr::new(common.host, common.port);
        let server = Server::bind(S::NAME, addr, S::router(state.clone()), listeners, token)
            .await?
            .with_limits(common.http.limits())
            .with_service::<S>(&state);
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

impl Server {
    /// What the server stops and checks for a service it runs: the relay of its outbox (one
    /// per process; replicas of the service take turns through the outbox's lease), its
    /// databases for readiness, its bus to flush on shutdown.
    pub fn with_service<S: Service>(mut self, state: &S::State) -> Self {
        let Parts {
            bus,
            outbox,
            databases,
        } = S::parts(state);
        if let (Some(outbox), Some(bus)) = (outbox, &bus) {
            self = self.with_relay(relay(S::NAME, outbox, bus.clone()));
        }
        for (name, database) in databases {
            self = self.with_database(name, database);
        }
        if let Some(bus) = bus {
            self = self.with_bus(bus);
        }
        self
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

/// A router of listeners for the queue group `group`, with [`listener_options`].
pub fn listener_router(group: &'static str) -> listener::Router {
    listener::Router::new(group).options(listener_options())
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

/// Runs each request's handler with the service's name as the `ce-source` of the events it
/// makes ([`ticketing_core::envelope::with_source`]).
#[derive(Debug, Clone, Copy)]
struct SourceLayer(&'static str);

impl<S> tower::Layer<S> for SourceLayer {
    type Service = Sourced<S>;

    fn layer(&self, inner: S) -> Sourced<S> {
        Sourced {
            inner,
            source: self.0,
        }
    }
}

/// A service whose calls run with a `ce-source`.
#[derive(Debug, Clone)]
struct Sourced<S> {
    inner: S,
    source: &'static str,
}

impl<S: tower::Service<R>, R> tower::Service<R> for Sourced<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = ticketing_core::envelope::WithSource<S::Future>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        ticketing_core::envelope::with_source(self.source, self.inner.call(request))
    }
}
