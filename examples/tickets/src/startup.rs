//! Wiring: state, router, listeners and the runnable application.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::FromRef;
use axum::routing::get;
use ticketing_common::{CommonArgs, Database, Server, SessionKeys};
use ticketing_core::events::{TicketCreated, TicketUpdated};
use ticketing_core::store::{OrderReplicaStore, TicketStore};
use ticketing_core::{Bus, BusError, ListenerHandle, Publisher, spawn_listener_with_token};
use ticketing_store::memory::{InMemoryOrderReplicaStore, InMemoryTicketStore};
use tokio_util::sync::CancellationToken;

use crate::configuration::Settings;
use crate::listeners::{OrderCancelledListener, OrderCreatedListener};
use crate::routes;

/// What the handlers and listeners share.
#[derive(Clone)]
pub struct TicketsState {
    /// Tickets.
    pub tickets: Arc<dyn TicketStore>,
    /// The replica of orders.
    pub order_replicas: Arc<dyn OrderReplicaStore>,
    /// Session keys.
    pub keys: SessionKeys,
    /// Publishes new tickets.
    pub created: Publisher<TicketCreated>,
    /// Publishes changed tickets.
    pub updated: Publisher<TicketUpdated>,
}

impl TicketsState {
    /// The state over these stores and this bus.
    pub fn new(
        tickets: Arc<dyn TicketStore>,
        order_replicas: Arc<dyn OrderReplicaStore>,
        keys: SessionKeys,
        bus: &Arc<dyn Bus>,
    ) -> Self {
        TicketsState {
            tickets,
            order_replicas,
            keys,
            created: Publisher::new(bus.clone()),
            updated: Publisher::new(bus.clone()),
        }
    }

    /// The stores of a database.
    pub fn stores_of(database: &Database) -> (Arc<dyn TicketStore>, Arc<dyn OrderReplicaStore>) {
        match database {
            Database::Memory => (
                Arc::new(InMemoryTicketStore::new()),
                Arc::new(InMemoryOrderReplicaStore::new()),
            ),
            Database::Postgres(db) => (Arc::new(db.tickets()), Arc::new(db.order_replicas())),
            Database::Mongo(db) => (Arc::new(db.tickets()), Arc::new(db.order_replicas())),
        }
    }
}

impl FromRef<TicketsState> for SessionKeys {
    fn from_ref(state: &TicketsState) -> SessionKeys {
        state.keys.clone()
    }
}

/// The routes of `/api/tickets`.
pub fn router(state: TicketsState) -> Router {
    Router::new()
        .route("/api/tickets", get(routes::index).post(routes::create))
        .route("/api/tickets/{id}", get(routes::show).put(routes::update))
        .with_state(state)
}

/// Starts the listeners; they stop when `token` is cancelled.
pub async fn spawn_listeners(
    state: &TicketsState,
    bus: &Arc<dyn Bus>,
    token: &CancellationToken,
) -> Result<Vec<ListenerHandle>, BusError> {
    let created = OrderCreatedListener {
        tickets: state.tickets.clone(),
        orders: state.order_replicas.clone(),
        updated: state.updated.clone(),
    };
    let cancelled = OrderCancelledListener {
        tickets: state.tickets.clone(),
        orders: state.order_replicas.clone(),
        updated: state.updated.clone(),
    };
    Ok(vec![
        spawn_listener_with_token(bus, created, token.child_token()).await?,
        spawn_listener_with_token(bus, cancelled, token.child_token()).await?,
    ])
}

/// The tickets service, bound and listening.
pub struct Application {
    server: Server,
}

impl Application {
    /// Connects the configured bus and database, starts the listeners and binds the port.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let keys = settings.common.session_keys(true)?;
        let bus_choice = settings.common.backends.bus_choice()?;
        let store = settings.common.backends.store_choice()?;
        let bus = bus_choice.connect().await?.bus;
        let (tickets, order_replicas) = TicketsState::stores_of(&store.open("tickets").await?);
        tracing::info!(bus = %bus_choice.describe(), store = store.describe(), "tickets service starting");
        Self::build_with(
            &settings.common,
            TicketsState::new(tickets, order_replicas, keys, &bus),
            bus,
        )
        .await
    }

    /// Starts the listeners on `bus` and binds the port for this state.
    pub async fn build_with(
        common: &CommonArgs,
        state: TicketsState,
        bus: Arc<dyn Bus>,
    ) -> anyhow::Result<Self> {
        let token = CancellationToken::new();
        let listeners = spawn_listeners(&state, &bus, &token).await?;
        let addr = SocketAddr::new(common.host, common.port);
        let server = Server::bind("tickets", addr, router(state), listeners, token)
            .await?
            .with_bus(bus);
        Ok(Application { server })
    }

    /// The port bound.
    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// Stops the service when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.server.shutdown_token()
    }

    /// Serves until SIGINT, SIGTERM or the shutdown token, then stops the listeners.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.run_until_stopped().await
    }
}
