//! Wiring: state, router, listeners and the runnable application. No backend is named here: the
//! configured bus and database hand out the bus and the stores.

use std::sync::Arc;

use async_trait::async_trait;
use axum::Router;
use axum::extract::FromRef;
use axum::routing::get;
use ticketing_common::service::listener_router;
use ticketing_common::service::{Document, Parts, Shared};
use ticketing_common::{Service, SessionKeys};
use ticketing_core::Bus;
use ticketing_core::listener;
use ticketing_core::ticketing::store::{OrderReplicaStore, TicketStore};
use ticketing_store::Database;

use crate::configuration::Settings;
use crate::listeners::order_event;
use crate::routes;
use ticketing_common::openapi::SessionSecurity;

/// What the handlers and listeners share: [`TicketsResources`] behind one `Arc`, since every
/// request clones the state (axum's `State`), and a clone of the resources is a dozen atomic
/// increments and decrements (about 4 % of a cached read's time in a profile). Reads and
/// writes of the fields go through `Deref` and `DerefMut` (a write while a clone is held copies
/// the resources first).
#[derive(Clone)]
pub struct TicketsState(Arc<TicketsResources>);

impl std::ops::Deref for TicketsState {
    type Target = TicketsResources;

    fn deref(&self) -> &TicketsResources {
        &self.0
    }
}

impl std::ops::DerefMut for TicketsState {
    fn deref_mut(&mut self) -> &mut TicketsResources {
        Arc::make_mut(&mut self.0)
    }
}

/// The stores, keys, bus and database of the tickets service.
#[derive(Clone)]
pub struct TicketsResources {
    /// Tickets.
    pub tickets: Arc<dyn TicketStore>,
    /// The replica of orders.
    pub order_replicas: Arc<dyn OrderReplicaStore>,
    /// Session keys.
    pub keys: SessionKeys,
    /// The bus.
    pub bus: Arc<dyn Bus>,
    /// The database, for readiness checks.
    pub database: Database,
}

impl TicketsState {
    /// The state over the stores of `database` and this bus.
    pub fn new(database: &Database, keys: SessionKeys, bus: &Arc<dyn Bus>) -> Self {
        TicketsState(Arc::new(TicketsResources {
            tickets: database.tickets(),
            order_replicas: database.order_replicas(),
            keys,
            bus: bus.clone(),
            database: database.clone(),
        }))
    }
}

impl FromRef<TicketsState> for SessionKeys {
    fn from_ref(state: &TicketsState) -> SessionKeys {
        state.keys.clone()
    }
}

/// The tickets service's part of the API.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "Ticketing: tickets"),
    paths(routes::index::index, routes::create::create, routes::show::show, routes::update::update),
    modifiers(&SessionSecurity)
)]
struct TicketsApi;

/// The tickets service.
pub struct Tickets;

#[async_trait]
impl Service for Tickets {
    const NAME: &'static str = "tickets";
    type Settings = Settings;
    type State = TicketsState;

    async fn state_on(settings: &Settings, shared: &Shared) -> anyhow::Result<TicketsState> {
        let keys = shared.session_keys(&settings.common)?;
        let bus = shared.bus()?.as_dyn();
        let database = settings.common.backends.open_database("tickets").await?;
        Ok(TicketsState::new(&database, keys, &bus))
    }

    const DOCUMENT: Option<Document> = Some(Document {
        path: "/api/tickets/openapi.json",
        api: <TicketsApi as utoipa::OpenApi>::openapi,
    });

    fn routes(state: TicketsState) -> Router {
        Router::new()
            .route("/api/tickets", get(routes::index).post(routes::create))
            .route("/api/tickets/{id}", get(routes::show).put(routes::update))
            .with_state(state)
    }

    fn parts(state: &TicketsState) -> Parts {
        Parts::of(Self::NAME, &state.database, &state.bus)
    }

    fn listeners(state: &TicketsState) -> Option<listener::Router> {
        Some(listener_router(crate::listeners::QUEUE_GROUP).on(state.clone(), order_event))
    }
}

/// The tickets service, bound and listening.
pub type Application = ticketing_common::Application<Tickets>;
