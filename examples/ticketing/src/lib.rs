//! The whole reference ticketing system in one process: the auth, tickets and orders services
//! behind the ingress routes (`/api/users`, `/api/tickets`, `/api/orders`) on one port, the
//! expiration service's listener, and the web client at `/`.
//!
//! In-memory bus and stores by default, nothing to install; NATS and PostgreSQL or MongoDB when
//! configured (`NATS_URL`, `DATABASE_URL` or `MONGO_URI`), each service keeping its own schema
//! or database there.

use std::net::SocketAddr;

use axum::Router;
use axum::routing::get;
use ticketing_auth::startup::{Auth, AuthState};
use ticketing_bus::AnyBus;
use ticketing_common::service::Shared;
use ticketing_common::{CommonArgs, Server, Service};
use ticketing_core::Clock;
use ticketing_expiration::Expiration;
use ticketing_orders::startup::{Orders, OrdersState};
use ticketing_payments::configuration::ProviderKind;
use ticketing_payments::startup::{Payments, PaymentsState};
use ticketing_tickets::startup::{Tickets, TicketsState};
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

ticketing_common::service_settings! {
    /// Settings of the whole system, from the environment and flags.
    pub struct Settings("ticketing", "The ticketing system: auth, tickets, orders and the web client on one port") {
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
}

impl Settings {
    /// The auth service's settings within these.
    pub fn auth(&self) -> ticketing_auth::configuration::Settings {
        ticketing_auth::configuration::Settings {
            common: self.common.clone(),
            guards: self.guards.clone(),
        }
    }

    /// The tickets service's settings within these.
    pub fn tickets(&self) -> ticketing_tickets::configuration::Settings {
        ticketing_tickets::configuration::Settings {
            common: self.common.clone(),
        }
    }

    /// The orders service's settings within these.
    pub fn orders(&self) -> ticketing_orders::configuration::Settings {
        ticketing_orders::configuration::Settings {
            common: self.common.clone(),
            expiration_window_seconds: self.expiration_window_seconds,
        }
    }

    /// The payments service's settings within these: the fake provider unless one is named
    /// (the run command needs no configuration).
    pub fn payments(&self) -> ticketing_payments::configuration::Settings {
        let mut provider = self.provider.clone();
        provider.provider = Some(provider.provider.unwrap_or(ProviderKind::Fake));
        ticketing_payments::configuration::Settings {
            common: self.common.clone(),
            provider,
        }
    }

    /// The expiration service's settings within these.
    pub fn expiration(&self) -> ticketing_expiration::Settings {
        ticketing_expiration::Settings {
            common: self.common.clone(),
        }
    }

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

ticketing_common::service_settings! {
    /// Settings of the `web` binary: the common options (only the port and address matter).
    pub struct WebSettings("web", "The web client of the ticketing system, alone (behind an ingress that routes /api to the services)") {}
}

/// The web client as a service of its own, as deployed behind an ingress.
pub struct Web;

#[async_trait::async_trait]
impl ticketing_common::Service for Web {
    const NAME: &'static str = "web";
    type Settings = WebSettings;
    type State = ();

    const USES_BUS: bool = false;
    const USES_SESSIONS: bool = false;

    async fn state_on(_settings: &WebSettings, _shared: &Shared) -> anyhow::Result<()> {
        Ok(())
    }

    fn routes(_state: ()) -> Router {
        web_router()
    }
}

/// The ingress: the services' routes on one router, and the web client at `/`.
pub fn router(states: &States) -> Router {
    Router::new()
        .merge(Auth::router(states.auth.clone()))
        .merge(Tickets::router(states.tickets.clone()))
        .merge(Orders::router(states.orders.clone()))
        .merge(Payments::router(states.payments.clone()))
        .merge(web_router())
        .merge(ticketing_common::openapi::document_route(
            "/api/openapi.json",
            openapi(),
        ))
}

/// The OpenAPI 3.1 document of the whole API: the three services' parts, merged.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut document = Auth::openapi();
    document.merge(Tickets::openapi());
    document.merge(Orders::openapi());
    document.merge(Payments::openapi());
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
    /// Connects the configured bus, opens each service's database, starts the listeners and
    /// binds the port.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        // Fail on a missing JWT_KEY before connecting anything.
        settings.common.session_keys(false)?;
        let bus = settings.common.backends.connect_bus().await?;
        let shared = Shared {
            bus: Some(bus),
            clock: Clock::system(),
            // The all-in-one serves plain HTTP itself: cookies are not `Secure` unless asked.
            secure_cookies: false,
        };
        Self::build_with(&settings, shared).await
    }

    /// Runs every service on what `shared` holds (the bus, the clock): each makes its state
    /// as it does alone ([`Service::state_on`]: its own database, its own checks), and the
    /// app merges their routes, listeners, relays and readiness checks.
    pub async fn build_with(settings: &Settings, shared: Shared) -> anyhow::Result<Self> {
        let bus = shared.bus()?.clone();
        let states = States {
            auth: Auth::state_on(&settings.auth(), &shared).await?,
            tickets: Tickets::state_on(&settings.tickets(), &shared).await?,
            orders: Orders::state_on(&settings.orders(), &shared).await?,
            payments: Payments::state_on(&settings.payments(), &shared).await?,
        };
        let expiration = Expiration::state_on(&settings.expiration(), &shared).await?;
        let token = CancellationToken::new();
        let order = settings.common.backends.listener_order;
        let mut listeners = Tickets::spawn_listeners(&states.tickets, order, &token).await?;
        listeners.extend(Orders::spawn_listeners(&states.orders, order, &token).await?);
        listeners.extend(Expiration::spawn_listeners(&expiration, order, &token).await?);
        listeners.extend(Payments::spawn_listeners(&states.payments, order, &token).await?);
        let addr = SocketAddr::new(settings.common.host, settings.common.port);
        let server = Server::bind("ticketing", addr, router(&states), listeners, token)
            .await?
            .with_limits(settings.common.http.limits())
            .with_service::<Auth>(&states.auth)
            .with_service::<Tickets>(&states.tickets)
            .with_service::<Orders>(&states.orders)
            .with_service::<Payments>(&states.payments);
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
