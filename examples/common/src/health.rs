//! Operations endpoints every service binary serves next to its API, for orchestrators and
//! scrapers (the ingress routes none of them):
//!
//! - `GET /healthz`: 200 `{"status": "alive"}` while the process serves — the liveness probe.
//! - `GET /readyz`: 200 `{"status": "ready", "checks": {…}}` when the database answers, the
//!   broker answers and every listener is running; 503 `{"status": "not ready", "checks": {…}}`
//!   naming what is not, and from the moment the service starts shutting down (so the
//!   orchestrator stops sending it requests before it stops taking them).
//! - `GET /metrics`: the Prometheus text of the process's metrics (see [`crate::telemetry`]).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, Value, json};
use ticketing_core::{Bus, ListenerHandle};
use ticketing_store::Database;
use tokio_util::sync::CancellationToken;

/// How long a dependency may take to answer a readiness check.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// What readiness looks at.
#[derive(Clone)]
pub struct Health {
    inner: Arc<Inner>,
}

struct Inner {
    databases: Vec<(&'static str, Database)>,
    bus: Option<Arc<dyn Bus>>,
    listeners: Arc<Mutex<Vec<ListenerHandle>>>,
    stopping: CancellationToken,
}

impl Health {
    /// Readiness of a service with these databases (by role name), bus and listeners; not
    /// ready once `stopping` is cancelled.
    pub fn new(
        databases: Vec<(&'static str, Database)>,
        bus: Option<Arc<dyn Bus>>,
        listeners: Arc<Mutex<Vec<ListenerHandle>>>,
        stopping: CancellationToken,
    ) -> Self {
        Health {
            inner: Arc::new(Inner {
                databases,
                bus,
                listeners,
                stopping,
            }),
        }
    }

    /// The checks, each `"ok"` or what is wrong; whether all passed.
    pub async fn check(&self) -> (bool, Map<String, Value>) {
        let inner = &self.inner;
        let mut checks = Map::new();
        let mut ready = true;
        let mut note = |name: String, result: Result<String, String>| {
            ready &= result.is_ok();
            checks.insert(
                name,
                Value::String(result.unwrap_or_else(|e| format!("failing: {e}"))),
            );
        };
        if inner.stopping.is_cancelled() {
            note(
                "shutdown".into(),
                Err("the service is shutting down".into()),
            );
        }
        for (name, database) in &inner.databases {
            note(format!("database:{name}"), answered(database.ping()).await);
        }
        if let Some(bus) = &inner.bus {
            note("broker".into(), answered(bus.health()).await);
        }
        let (running, stopped): (Vec<_>, Vec<_>) = {
            let listeners = inner
                .listeners
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            listeners
                .iter()
                .map(|l| (l.subject(), l.is_finished()))
                .partition(|(_, finished)| !finished)
        };
        if !running.is_empty() || !stopped.is_empty() {
            let result = if stopped.is_empty() {
                Ok(format!("{} running", running.len()))
            } else {
                Err(format!(
                    "stopped: {}",
                    stopped
                        .iter()
                        .map(|(s, _)| *s)
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            };
            note("listeners".into(), result);
        }
        (ready, checks)
    }
}

/// `"ok"` when `check` succeeds within [`CHECK_TIMEOUT`]; what went wrong otherwise.
async fn answered<E: std::fmt::Display>(
    check: impl std::future::Future<Output = Result<(), E>>,
) -> Result<String, String> {
    match tokio::time::timeout(CHECK_TIMEOUT, check).await {
        Ok(Ok(())) => Ok("ok".into()),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!("no answer within {CHECK_TIMEOUT:?}")),
    }
}

async fn alive() -> Json<Value> {
    Json(json!({"status": "alive"}))
}

async fn ready(State(health): State<Health>) -> Response {
    let (ready, checks) = health.check().await;
    if ready {
        Json(json!({"status": "ready", "checks": checks})).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not ready", "checks": checks})),
        )
            .into_response()
    }
}

async fn metrics() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::telemetry::prometheus().render(),
    )
        .into_response()
}

/// `/healthz`, `/readyz` and `/metrics`.
pub fn routes(health: Health) -> Router {
    Router::new()
        .route("/healthz", get(alive))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .with_state(health)
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use ticketing_core::bus::{
        BusError, DeadLetter, OutgoingMessage, PublishAck, SubscribeOptions, Subscription,
    };

    mockall::mock! {
        Broker {}

        #[async_trait]
        impl Bus for Broker {
            async fn publish(&self, message: OutgoingMessage) -> Result<PublishAck, BusError>;
            async fn subscribe(
                &self,
                subject: &str,
                group: &str,
                options: SubscribeOptions,
            ) -> Result<Box<dyn Subscription>, BusError>;
            async fn dead_letters(&self) -> Result<Vec<DeadLetter>, BusError>;
            async fn redrive(&self, id: u64) -> Result<(), BusError>;
            async fn health(&self) -> Result<(), BusError>;
            async fn flush(&self) -> Result<(), BusError>;
        }
    }

    fn health_with(broker: MockBroker, stopping: CancellationToken) -> Health {
        Health::new(
            vec![(
                "tickets",
                Database::Memory(ticketing_store::memory::InMemoryDatabase::new()),
            )],
            Some(Arc::new(broker)),
            Arc::default(),
            stopping,
        )
    }

    #[tokio::test]
    async fn a_broker_that_does_not_answer_makes_the_service_not_ready() {
        let mut broker = MockBroker::new();
        broker
            .expect_health()
            .times(1)
            .returning(|| Err(BusError::backend("nats", "the connection is disconnected")));
        let (ready, checks) = health_with(broker, CancellationToken::new()).check().await;
        assert!(!ready);
        assert_eq!(checks["database:tickets"], "ok");
        assert_eq!(
            checks["broker"],
            "failing: nats error: the connection is disconnected"
        );
    }

    #[tokio::test]
    async fn a_service_shutting_down_is_not_ready() {
        let mut broker = MockBroker::new();
        broker.expect_health().returning(|| Ok(()));
        let stopping = CancellationToken::new();
        let health = health_with(broker, stopping.clone());
        assert!(health.check().await.0);
        stopping.cancel();
        let (ready, checks) = health.check().await;
        assert!(!ready);
        assert_eq!(checks["shutdown"], "failing: the service is shutting down");
    }
}
