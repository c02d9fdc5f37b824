//! Wiring: state, router, listeners and the runnable application.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::FromRef;
use axum::routing::get;
use ticketing_common::{CommonArgs, Database, Server, SessionKeys};
use ticketing_core::events::{OrderCancelled, OrderCreated};
use ticketing_core::store::{OrderStore, TicketReplicaStore};
use ticketing_core::{Bus, BusError, ListenerHandle, Publisher, spawn_listener_with_token};
use ticketing_store::memory::{InMemoryOrderStore, InMemoryTicketReplicaStore};
use tokio_util::sync::CancellationToken;

use crate::configuration::Settings;
use crate::listeners::{ExpirationCompleteListener, TicketCreatedListener, TicketUpdatedListener};
use crate::routes;

/// What the handlers and listeners share.
#[derive(Clone)]
pub struct OrdersState {
    /// Orders.
    pub orders: Arc<dyn OrderStore>,
    /// The replica of tickets.
    pub tickets: Arc<dyn TicketReplicaStore>,
    /// Session keys.
    pub keys: SessionKeys,
    /// How long orders stay open.
    pub expiration_window: Duration,
    /// Publishes new orders.
    pub created: Publisher<OrderCreated>,
    /// Publishes cancellations.
    pub cancelled: Publisher<OrderCancelled>,
}

impl OrdersState {
    /// The state over these stores and this bus.
    pub fn new(
        orders: Arc<dyn OrderStore>,
        tickets: Arc<dyn TicketReplicaStore>,
        keys: SessionKeys,
        expiration_window: Duration,
        bus: &Arc<dyn Bus>,
    ) -> Self {
        OrdersState {
            orders,
            tickets,
            keys,
            expiration_window,
            created: Publisher::new(bus.clone()),
            cancelled: Publisher::new(bus.clone()),
        }
    }

    /// The stores of a database.
    pub fn stores_of(database: &Database) -> (Arc<dyn OrderStore>, Arc<dyn TicketReplicaStore>) {
        match database {
            Database::Memory => {
                let tickets = InMemoryTicketReplicaStore::new();
                (
                    Arc::new(InMemoryOrderStore::new(&tickets)),
                    Arc::new(tickets),
                )
            }
            Database::Postgres(db) => (Arc::new(db.orders()), Arc::new(db.ticket_replicas())),
            Database::Mongo(db) => (Arc::new(db.orders()), Arc::new(db.ticket_replicas())),
        }
    }
}

impl FromRef<OrdersState> for SessionKeys {
    fn from_ref(state: &OrdersState) -> SessionKeys {
        state.keys.clone()
    }
}

/// The routes of `/api/orders`.
pub fn router(state: OrdersState) -> Router {
    Router::new()
        .route("/api/orders", get(routes::index).post(routes::create))
        .route("/api/orders/{id}", get(routes::show).delete(routes::cancel))
        .with_state(state)
}

/// Starts the listeners; they stop when `token` is cancelled.
pub async fn spawn_listeners(
    state: &OrdersState,
    bus: &Arc<dyn Bus>,
    token: &CancellationToken,
) -> Result<Vec<ListenerHandle>, BusError> {
    Ok(vec![
        spawn_listener_with_token(
            bus,
            TicketCreatedListener {
                tickets: state.tickets.clone(),
            },
            token.child_token(),
        )
        .await?,
        spawn_listener_with_token(
            bus,
            TicketUpdatedListener {
                tickets: state.tickets.clone(),
            },
            token.child_token(),
        )
        .await?,
        spawn_listener_with_token(
            bus,
            ExpirationCompleteListener {
                orders: state.orders.clone(),
                cancelled: state.cancelled.clone(),
            },
            token.child_token(),
        )
        .await?,
    ])
}

/// The orders service, bound and listening.
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
        let (orders, tickets) = OrdersState::stores_of(&store.open("orders").await?);
        tracing::info!(bus = %bus_choice.describe(), store = store.describe(), "orders service starting");
        let state = OrdersState::new(orders, tickets, keys, settings.expiration_window(), &bus);
        Self::build_with(&settings.common, state, bus).await
    }

    /// Starts the listeners on `bus` and binds the port for this state.
    pub async fn build_with(
        common: &CommonArgs,
        state: OrdersState,
        bus: Arc<dyn Bus>,
    ) -> anyhow::Result<Self> {
        let token = CancellationToken::new();
        let listeners = spawn_listeners(&state, &bus, &token).await?;
        let addr = SocketAddr::new(common.host, common.port);
        let server = Server::bind("orders", addr, router(state), listeners, token)
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
