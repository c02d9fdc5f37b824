//! Wiring: state, router, listeners and the runnable application. No backend is named here: the
//! configured bus and database hand out the bus and the stores.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::extract::FromRef;
use axum::routing::get;
use ticketing_common::service::listener_router;
use ticketing_common::service::{Document, Parts, Shared};
use ticketing_common::{Service, SessionKeys};
use ticketing_core::listener;
use ticketing_core::ticketing::store::{OrderStore, TicketReplicaStore};
use ticketing_core::{Bus, Clock};
use ticketing_store::Database;

use crate::configuration::Settings;
use crate::listeners::{expiration_complete, payment_created, ticket_event};
use crate::routes;
use ticketing_common::openapi::SessionSecurity;

/// What the handlers and listeners share.
#[derive(Clone, FromRef)]
pub struct OrdersState {
    /// Orders.
    pub orders: Arc<dyn OrderStore>,
    /// The replica of tickets.
    pub tickets: Arc<dyn TicketReplicaStore>,
    /// Session keys.
    pub keys: SessionKeys,
    /// How long orders stay open.
    pub expiration_window: Duration,
    /// Where the time comes from (expiry).
    pub clock: Clock,
    /// The bus.
    pub bus: Arc<dyn Bus>,
    /// The database, for readiness checks.
    pub database: Database,
}

impl OrdersState {
    /// The state over the stores of `database` and this bus, reading the time from `clock`.
    pub fn new(
        database: &Database,
        keys: SessionKeys,
        expiration_window: Duration,
        clock: Clock,
        bus: &Arc<dyn Bus>,
    ) -> Self {
        OrdersState {
            orders: database.orders(),
            tickets: database.ticket_replicas(),
            keys,
            expiration_window,
            clock,
            bus: bus.clone(),
            database: database.clone(),
        }
    }
}

/// The orders service's part of the API.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "Ticketing: orders"),
    paths(
        routes::index::index,
        routes::create::create,
        routes::show::show,
        routes::cancel::cancel
    ),
    modifiers(&SessionSecurity)
)]
struct OrdersApi;

/// The orders service.
pub struct Orders;

#[async_trait]
impl Service for Orders {
    const NAME: &'static str = "orders";
    type Settings = Settings;
    type State = OrdersState;

    async fn state_on(settings: &Settings, shared: &Shared) -> anyhow::Result<OrdersState> {
        let keys = shared.session_keys(&settings.common)?;
        let bus = shared.bus()?;
        // Expiration timers are events waiting in the stream for the window to pass.
        bus.require_retention(settings.expiration_window(), "the expiration window")?;
        let bus = bus.as_dyn();
        let database = settings.common.backends.open_database("orders").await?;
        Ok(OrdersState::new(
            &database,
            keys,
            settings.expiration_window(),
            shared.clock.clone(),
            &bus,
        ))
    }

    const DOCUMENT: Option<Document> = Some(Document {
        path: "/api/orders/openapi.json",
        api: <OrdersApi as utoipa::OpenApi>::openapi,
    });

    fn routes(state: OrdersState) -> Router {
        Router::new()
            .route("/api/orders", get(routes::index).post(routes::create))
            .route("/api/orders/{id}", get(routes::show).delete(routes::cancel))
            .with_state(state)
    }

    fn parts(state: &OrdersState) -> Parts {
        Parts::of(Self::NAME, &state.database, &state.bus)
    }

    fn listeners(state: &OrdersState) -> Option<listener::Router> {
        Some(
            listener_router(crate::listeners::QUEUE_GROUP)
                .on(state.clone(), ticket_event)
                .on(state.clone(), expiration_complete)
                .on(state.clone(), payment_created),
        )
    }
}

/// The orders service, bound and listening.
pub type Application = ticketing_common::Application<Orders>;
