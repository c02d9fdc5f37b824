//! Wiring: state, router, listeners and the runnable application. No backend is named here:
//! the configured bus and database hand out the bus and the stores, the settings the provider.

use std::sync::Arc;

use async_trait::async_trait;
use axum::Router;
use axum::extract::FromRef;
use axum::routing::{get, post};
use ticketing_common::openapi::SessionSecurity;
use ticketing_common::service::listener_router;
use ticketing_common::service::{Document, Parts, Shared};
use ticketing_common::{Service, SessionKeys};
use ticketing_core::Bus;
use ticketing_core::listener;
use ticketing_core::ticketing::payment::{PayableOrderStore, PaymentStore};
use ticketing_store::Database;
use tokio_util::sync::CancellationToken;

use crate::configuration::Settings;
use crate::listeners::order_event;
use crate::provider::PaymentProvider;
use crate::routes;
use crate::settle::{Repair, RepairOptions};

/// What the handlers and listeners share.
#[derive(Clone, FromRef)]
pub struct PaymentsState {
    /// Payments.
    pub payments: Arc<dyn PaymentStore>,
    /// The replica of orders.
    pub orders: Arc<dyn PayableOrderStore>,
    /// The provider that charges cards.
    pub provider: Arc<dyn PaymentProvider>,
    /// Session keys.
    pub keys: SessionKeys,
    /// The bus.
    pub bus: Arc<dyn Bus>,
    /// How the repair of pending attempts runs.
    pub repair: RepairOptions,
    /// The database, for readiness checks.
    pub database: Database,
}

impl PaymentsState {
    /// The state over the stores of `database`, this bus and this provider.
    pub fn new(
        database: &Database,
        keys: SessionKeys,
        bus: &Arc<dyn Bus>,
        provider: Arc<dyn PaymentProvider>,
    ) -> Self {
        PaymentsState {
            payments: database.payments(),
            orders: database.payable_orders(),
            provider,
            keys,
            bus: bus.clone(),
            repair: RepairOptions::default(),
            database: database.clone(),
        }
    }

    /// The same state with the repair looking at pending attempts this often.
    pub fn with_repair_every(self, every: std::time::Duration) -> Self {
        PaymentsState {
            repair: RepairOptions {
                every,
                ..self.repair
            },
            ..self
        }
    }
}

/// The payments service's part of the API.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "Ticketing: payments"),
    paths(routes::create::create, routes::provider::provider),
    modifiers(&SessionSecurity)
)]
struct PaymentsApi;

/// The payments service.
pub struct Payments;

#[async_trait]
impl Service for Payments {
    const NAME: &'static str = "payments";
    type Settings = Settings;
    type State = PaymentsState;

    async fn state_on(settings: &Settings, shared: &Shared) -> anyhow::Result<PaymentsState> {
        let keys = shared.session_keys(&settings.common)?;
        // The service needs the choice made: no silent fake in production (the all-in-one app
        // names the fake in its settings when none is configured).
        let provider = settings.provider.provider(None)?;
        let bus = shared.bus()?.as_dyn();
        let database = settings.common.backends.open_database("payments").await?;
        Ok(PaymentsState::new(&database, keys, &bus, provider)
            .with_repair_every(settings.provider.repair_every()))
    }

    const DOCUMENT: Option<Document> = Some(Document {
        path: "/api/payments/openapi.json",
        api: <PaymentsApi as utoipa::OpenApi>::openapi,
    });

    fn routes(state: PaymentsState) -> Router {
        Router::new()
            .route("/api/payments", post(routes::create))
            .route("/api/payments/provider", get(routes::provider))
            .with_state(state)
    }

    fn parts(state: &PaymentsState) -> Parts {
        Parts::of(Self::NAME, &state.database, &state.bus)
    }

    fn listeners(state: &PaymentsState) -> Option<listener::Router> {
        Some(listener_router(crate::listeners::QUEUE_GROUP).on(state.clone(), order_event))
    }

    /// The repair of attempts left pending (a crash, a provider down).
    fn background(state: &PaymentsState, token: &CancellationToken) {
        tokio::spawn(Repair::new(state.repair).run(
            state.payments.clone(),
            state.provider.clone(),
            token.child_token(),
        ));
    }
}

/// The payments service, bound and ready to run.
pub type Application = ticketing_common::Application<Payments>;
