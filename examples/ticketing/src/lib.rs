//! The whole reference ticketing system in one process: the auth, tickets and orders services
//! behind the ingress routes (`/api/users`, `/api/tickets`, `/api/orders`) on one port, the
//! expiration service's listener, and the web client at `/`.
//!
//! In-memory bus and stores by default, nothing to install; NATS and PostgreSQL or MongoDB when
//! configured (`NATS_URL`, `DATABASE_URL` or `MONGO_URI`), each service keeping its own schema
//! or database there.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use ticketing_auth::startup::AuthState;
use ticketing_bus::AnyBus;
use ticketing_common::service::relay;
use ticketing_common::{CommonArgs, Server};
use ticketing_core::Clock;
use ticketing_orders::startup::OrdersState;
use ticketing_payments::configuration::ProviderKind;
use ticketing_payments::startup::PaymentsState;
use ticketing_store::Database;
use ticketing_tickets::startup::TicketsState;
use tokio_util::sync::CancellationToken;

/// The web client: one page, its script and its styles, talking to the API on the same
/// origin.
const WEB_CLIENT: &str = include_str!("../web/index.html");
const WEB_SCRIPT: &str = include_str!("../web/app.js");
const WEB_STYLES: &str = include_str!("../web/app.css");

/// What the web client may load: its own script, styles and API, nothing inline, no framing.
pub const WEB_CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

fn web(content_type: &'static str, body: &'static str) -> impl axum::response::IntoResponse {
    use axum::http::header;
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, WEB_CONTENT_SECURITY_POLICY),
        ],
        body,
    )
}

/// Settings of the whole system, from the environment and flags.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "ticketing",
    about = "The ticketing system: auth, tickets, orders and the web client on one port",
    version
)]
pub struct Settings {
    /// Options every service takes.
    #[command(flatten)]
    pub common: CommonArgs,
    /// How long an order stays open, in seconds.
    #[arg(long, env = "EXPIRATION_WINDOW_SECONDS", default_value_t = 15 * 60)]
    pub expiration_window_seconds: u64,
    /// The auth service's hashing bound and sign-in limits.
    #[command(flatten)]
    pub guards: ticketing_auth::guard::GuardArgs,
    /// The payment provider (default: the fake).
    #[command(flatten)]
    pub provider: ticketing_payments::configuration::ProviderArgs,
}

impl Settings {
    /// Settings for tests: port 0, in-memory backends, this key.
    pub fn for_tests(jwt_key: &str) -> Self {
        Settings {
            common: CommonArgs::for_tests(jwt_key),
            expiration_window_seconds: 15 * 60,
            guards: ticketing_auth::guard::GuardArgs::default(),
            provider: ticketing_payments::configuration::ProviderArgs {
                provider: Some(ProviderKind::Fake),
                stripe_key: None,
                stripe_base_url: "https://api.stripe.com".into(),
                repair_seconds: 30,
            },
        }
    }
}

/// The databases of the three services.
#[derive(Debug, Clone)]
pub struct Databases {
    /// Auth's.
    pub auth: Database,
    /// Tickets'.
    pub tickets: Database,
    /// Orders'.
    pub orders: Database,
    /// Payments'.
    pub payments: Database,
}

impl Databases {
    /// Each service's database, in its own schema or database, as when they run apart.
    pub async fn open(backends: &ticketing_common::config::BackendArgs) -> anyhow::Result<Self> {
        Ok(Databases {
            auth: backends.open_database("auth").await?,
            tickets: backends.open_database("tickets").await?,
            orders: backends.open_database("orders").await?,
            payments: backends.open_database("payments").await?,
        })
    }
}

/// The three services' states.
#[derive(Clone)]
pub struct States {
    /// Auth.
    pub auth: AuthState,
    /// Tickets.
    pub tickets: TicketsState,
    /// Orders.
    pub orders: OrdersState,
    /// Payments.
    pub payments: PaymentsState,
}

/// The paths of the web client: the page, its script and its styles (the ingress routes
/// exactly these to the `web` service).
pub const WEB_PATHS: [&str; 3] = ["/", "/app.js", "/app.css"];

/// The web client's routes: [`WEB_PATHS`].
pub fn web_router() -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { web("text/html; charset=utf-8", WEB_CLIENT) }),
        )
        .route(
            "/app.js",
            get(|| async { web("text/javascript; charset=utf-8", WEB_SCRIPT) }),
        )
        .route(
            "/app.css",
            get(|| async { web("text/css; charset=utf-8", WEB_STYLES) }),
        )
}

/// Settings of the `web` binary: the common options (only the port and address matter).
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "web",
    about = "The web client of the ticketing system, alone (behind an ingress that routes /api to the services)",
    version
)]
pub struct WebSettings {
    /// Options every service takes.
    #[command(flatten)]
    pub common: CommonArgs,
}

/// The web client as a service of its own, as deployed behind an ingress.
pub struct Web;

#[async_trait::async_trait]
impl ticketing_common::Service for Web {
    const NAME: &'static str = "web";
    type Settings = WebSettings;
    type State = ();

    fn common(settings: &WebSettings) -> &CommonArgs {
        &settings.common
    }

    async fn state(_settings: &WebSettings) -> anyhow::Result<()> {
        Ok(())
    }

    fn router(_state: ()) -> Router {
        web_router()
    }
}

/// The ingress: the services' routes on one router, and the web client at `/`.
pub fn router(states: &States) -> Router {
    Router::new()
        .merge(ticketing_auth::startup::router(states.auth.clone()))
        .merge(ticketing_tickets::startup::router(states.tickets.clone()))
        .merge(ticketing_orders::startup::router(states.orders.clone()))
        .merge(ticketing_payments::startup::router(states.payments.clone()))
        .merge(web_router())
        .merge(ticketing_common::openapi::document_route(
            "/api/openapi.json",
            openapi(),
        ))
}

/// The OpenAPI 3.1 document of the whole API: the three services' parts, merged.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut document = ticketing_auth::startup::openapi();
    document.merge(ticketing_tickets::startup::openapi());
    document.merge(ticketing_orders::startup::openapi());
    document.merge(ticketing_payments::startup::openapi());
    document.info.title = "Ticketing".into();
    document.info.description =
        Some("The ticketing system's HTTP API: users, tickets and orders.".into());
    document
}

/// The whole system, bound and listening.
pub struct TicketingApp {
    server: Server,
    bus: AnyBus,
    states: States,
}

impl TicketingApp {
    /// Connects the configured bus and databases, starts the listeners and binds the port.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        // Fail on a missing JWT_KEY before connecting anything.
        settings.common.session_keys(false)?;
        let backends = &settings.common.backends;
        let bus = backends.connect_bus().await?;
        // Expiration timers are events waiting in the stream for the window to pass.
        bus.require_retention(
            Duration::from_secs(settings.expiration_window_seconds),
            "the expiration window",
        )?;
        let databases = Databases::open(backends).await?;
        Self::build_with(&settings, bus, &databases, Clock::system()).await
    }

    /// Starts the system on this bus and these databases, reading the time from `clock`.
    pub async fn build_with(
        settings: &Settings,
        bus: AnyBus,
        databases: &Databases,
        clock: Clock,
    ) -> anyhow::Result<Self> {
        // The all-in-one serves plain HTTP itself: cookies are not `Secure` unless asked.
        let keys = settings
            .common
            .session_keys(false)?
            .with_clock(clock.clone());
        let shared = bus.as_dyn();
        let states = States {
            auth: AuthState::new(
                &databases.auth,
                keys.clone(),
                ticketing_auth::guard::Guards::new(&settings.guards),
            ),
            tickets: TicketsState::new(&databases.tickets, keys.clone(), &shared),
            orders: OrdersState::new(
                &databases.orders,
                keys.clone(),
                Duration::from_secs(settings.expiration_window_seconds),
                clock.clone(),
                &shared,
            ),
            // The fake provider unless one is named: the run command needs no configuration.
            payments: PaymentsState::new(
                &databases.payments,
                keys,
                &shared,
                settings.provider.provider(Some(ProviderKind::Fake))?,
            )
            .with_repair_every(settings.provider.repair_every()),
        };
        let token = CancellationToken::new();
        let mut listeners =
            ticketing_tickets::startup::spawn_listeners(&states.tickets, &token).await?;
        listeners.extend(ticketing_orders::startup::spawn_listeners(&states.orders, &token).await?);
        listeners.extend(ticketing_expiration::spawn_listeners(&shared, clock, &token).await?);
        listeners
            .extend(ticketing_payments::startup::spawn_listeners(&states.payments, &token).await?);
        let addr = SocketAddr::new(settings.common.host, settings.common.port);
        let server = Server::bind("ticketing", addr, router(&states), listeners, token)
            .await?
            .with_limits(settings.common.http.limits())
            .with_relay(relay(
                "tickets",
                states.tickets.outbox.clone(),
                shared.clone(),
            ))
            .with_relay(relay(
                "orders",
                states.orders.outbox.clone(),
                shared.clone(),
            ))
            .with_relay(relay(
                "payments",
                states.payments.outbox.clone(),
                shared.clone(),
            ))
            .with_database("auth", databases.auth.clone())
            .with_database("tickets", databases.tickets.clone())
            .with_database("orders", databases.orders.clone())
            .with_database("payments", databases.payments.clone())
            .with_bus(shared);
        Ok(TicketingApp {
            server,
            bus,
            states,
        })
    }

    /// The port bound.
    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// The bus the services share (with the in-memory harness when that is the bus).
    pub fn bus(&self) -> &AnyBus {
        &self.bus
    }

    /// The services' states (stores and publishers), for tests and tools.
    pub fn states(&self) -> &States {
        &self.states
    }

    /// Stops the system when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.server.shutdown_token()
    }

    /// Serves until SIGINT, SIGTERM or the shutdown token; then stops the listeners once the
    /// in-flight requests and messages are finished and settled.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.run_until_stopped().await
    }
}
