//! The cross-service flow over live backends, each service as its own application with its own
//! connections: NATS JetStream (`NATS_URL`) with PostgreSQL (`DATABASE_URL`) or a MongoDB-wire
//! server (`MONGO_URI`). Each test uses its own streams, schemas and databases.

use ticketing_auth::startup::{Auth, AuthState};
use ticketing_bus::{BusSettings, NatsSettings};
use ticketing_core::Clock;
use ticketing_orders::startup::{Orders, OrdersState};
use ticketing_store::{StoreBackend, StoreSettings};
use ticketing_test_app::{self as kit, system as support};
use ticketing_test_live as live;
use ticketing_tickets::startup::{Tickets, TicketsState};

use support::Endpoints;

/// The three services, each its own application with its own connections, on streams and a
/// schema or database set of their own.
async fn spawn_services(store: StoreBackend) -> Endpoints {
    let stream = live::fresh_nats_stream("LIVE").await;
    let bus = BusSettings::Nats(NatsSettings {
        url: live::nats_url(),
        stream: stream.clone(),
        subject_prefix: stream.to_lowercase(),
        ..NatsSettings::new(String::new())
    });
    let base = match store {
        StoreBackend::Postgres => live::fresh_pg_schema("live").await,
        _ => live::fresh_mongo_database("live").await,
    };
    let database = |service: &str| {
        let name = format!("{base}_{service}");
        let settings = match store {
            StoreBackend::Postgres => StoreSettings::Postgres {
                url: live::database_url(),
                schema: Some(name),
                max_connections: None,
                min_connections: None,
                timeout_seconds: None,
            },
            _ => StoreSettings::Mongo {
                uri: live::mongo_uri(),
                database: Some(name),
                timeout_seconds: None,
            },
        };
        let service = service.to_owned();
        async move {
            settings
                .open_ticketing(&service)
                .await
                .unwrap_or_else(|e| panic!("{settings} (scripts/test starts it): {e}"))
        }
    };
    let keys = kit::keys();

    let auth = kit::spawn::<Auth>(AuthState::new(
        &database("auth").await,
        keys.clone(),
        ticketing_auth::guard::Guards::default(),
    ))
    .await;
    let tickets_bus = bus
        .connect()
        .await
        .expect("NATS (scripts/test starts it)")
        .as_dyn();
    let tickets = kit::spawn::<Tickets>(TicketsState::new(
        &database("tickets").await,
        keys.clone(),
        &tickets_bus,
    ))
    .await;
    let orders_bus = bus
        .connect()
        .await
        .expect("NATS (scripts/test starts it)")
        .as_dyn();
    let orders = kit::spawn::<Orders>(OrdersState::new(
        &database("orders").await,
        keys,
        std::time::Duration::from_secs(900),
        Clock::system(),
        &orders_bus,
    ))
    .await;
    Endpoints {
        auth: auth.address,
        tickets: tickets.address,
        // No payments service here: the stories told over these three do not pay.
        payments: orders.address.clone(),
        orders: orders.address,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_flow_runs_across_separate_services_on_nats_and_postgres() {
    let at = spawn_services(StoreBackend::Postgres).await;
    support::sell_order_cancel_reorder(&at).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_32_concurrent_orders_on_postgres_exactly_one_wins() {
    let at = spawn_services(StoreBackend::Postgres).await;
    support::one_of_32_concurrent_orders_wins(&at).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_flow_runs_across_separate_services_on_nats_and_mongo() {
    let at = spawn_services(StoreBackend::Mongo).await;
    support::sell_order_cancel_reorder(&at).await;
}
