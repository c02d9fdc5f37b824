//! The cross-service flow over live backends, each service as its own application with its own
//! connections: NATS JetStream (`NATS_URL`) with PostgreSQL (`DATABASE_URL`) or a MongoDB-wire
//! server (`MONGO_URI`). Each test uses its own streams, schemas and databases.

mod support;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use ticketing_auth::startup::AuthState;
use ticketing_bus::nats::{NatsBus, NatsBusConfig, NatsStorage};
use ticketing_common::{CommonArgs, Database};
use ticketing_core::{Bus, Id};
use ticketing_orders::startup::OrdersState;
use ticketing_store::mongo::MongoDatabase;
use ticketing_store::postgres::PgDatabase;
use ticketing_tickets::startup::TicketsState;

use support::Endpoints;

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[derive(Clone, Copy)]
enum Store {
    Postgres,
    Mongo,
}

async fn database(store: Store, name: &str) -> Database {
    match store {
        Store::Postgres => {
            let url = env_or(
                "DATABASE_URL",
                "postgres://postgres:postgres@127.0.0.1:5432/postgres",
            );
            Database::Postgres(
                PgDatabase::connect_schema(&url, name)
                    .await
                    .unwrap_or_else(|e| {
                        panic!("PostgreSQL must be running at {url} (scripts/test starts it): {e}")
                    }),
            )
        }
        Store::Mongo => {
            let uri = env_or(
                "MONGO_URI",
                "mongodb://127.0.0.1:27017/?directConnection=true",
            );
            let db = MongoDatabase::connect(&uri, name)
                .await
                .unwrap_or_else(|e| panic!("a MongoDB-wire server must be running at {uri} (scripts/test starts one): {e}"));
            let client = db.database().client();
            for stale in client
                .list_database_names()
                .await
                .unwrap_or_default()
                .iter()
                .filter(|n| n.starts_with("live_") && is_stale(n))
            {
                let _ = client.database(stale).drop().await;
            }
            Database::Mongo(db)
        }
    }
}

/// A NATS connection of a service's own, on the test's streams.
async fn bus(name: &str) -> Arc<dyn Bus> {
    let url = env_or("NATS_URL", "nats://127.0.0.1:4222");
    let config = NatsBusConfig {
        storage: NatsStorage::Memory,
        ..NatsBusConfig::isolated(&url, name)
    };
    let bus = NatsBus::connect(config).await.unwrap_or_else(|e| {
        panic!("NATS with JetStream must be running at {url} (scripts/test starts it): {e}")
    });
    drop_stale_streams(&bus).await;
    bus.as_dyn()
}

fn is_stale(name: &str) -> bool {
    let secs: Option<u64> = name.split('_').nth(1).and_then(|s| s.parse().ok());
    secs.is_some_and(|s| s + 3600 < now_secs())
}

/// Deletes the streams of live-test runs older than an hour from the shared server.
async fn drop_stale_streams(bus: &NatsBus) {
    use futures::StreamExt;
    let js = async_nats::jetstream::new(bus.client().clone());
    let names: Vec<String> = js
        .stream_names()
        .filter_map(|n| async move { n.ok() })
        .collect()
        .await;
    for name in names
        .iter()
        .filter(|n| n.starts_with("LIVE_") && is_stale(n))
    {
        let _ = js.delete_stream(name).await;
    }
}

/// Drops the schemas of live-test runs older than an hour from the shared test database.
async fn drop_stale_schemas() {
    let url = env_or(
        "DATABASE_URL",
        "postgres://postgres:postgres@127.0.0.1:5432/postgres",
    );
    let Ok(pool) = sqlx::PgPool::connect(&url).await else {
        return;
    };
    let schemas: Vec<String> =
        sqlx::query_scalar("SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'live\\_%'")
            .fetch_all(&pool)
            .await
            .unwrap_or_default();
    for schema in schemas {
        if is_stale(&schema) {
            let drop = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
            let _ = sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&pool).await;
        }
    }
}

/// The three services, each its own application on its own port.
async fn spawn_services(store: Store) -> Endpoints {
    if matches!(store, Store::Postgres) {
        drop_stale_schemas().await;
    }
    let name = format!("LIVE_{}_{}", now_secs(), Id::new());
    let schema = |service: &str| format!("{}_{service}", name.to_lowercase());
    let common = CommonArgs::for_tests("live-jwt-key");
    let keys = common.session_keys(false).unwrap();

    let auth_db = database(store, &schema("auth")).await;
    let auth = ticketing_auth::startup::Application::build_with(
        &common,
        AuthState {
            users: ticketing_auth::startup::users_of(&auth_db),
            keys: keys.clone(),
        },
    )
    .await
    .unwrap();

    let tickets_bus = bus(&name).await;
    let (tickets, order_replicas) =
        TicketsState::stores_of(&database(store, &schema("tickets")).await);
    let tickets_app = ticketing_tickets::startup::Application::build_with(
        &common,
        TicketsState::new(tickets, order_replicas, keys.clone(), &tickets_bus),
        tickets_bus,
    )
    .await
    .unwrap();

    let orders_bus = bus(&name).await;
    let (orders, ticket_replicas) =
        OrdersState::stores_of(&database(store, &schema("orders")).await);
    let orders_app = ticketing_orders::startup::Application::build_with(
        &common,
        OrdersState::new(
            orders,
            ticket_replicas,
            keys,
            std::time::Duration::from_secs(900),
            &orders_bus,
        ),
        orders_bus,
    )
    .await
    .unwrap();

    let at = Endpoints {
        auth: format!("http://127.0.0.1:{}", auth.port()),
        tickets: format!("http://127.0.0.1:{}", tickets_app.port()),
        orders: format!("http://127.0.0.1:{}", orders_app.port()),
    };
    tokio::spawn(auth.run_until_stopped());
    tokio::spawn(tickets_app.run_until_stopped());
    tokio::spawn(orders_app.run_until_stopped());
    at
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_flow_runs_across_separate_services_on_nats_and_postgres() {
    let at = spawn_services(Store::Postgres).await;
    support::sell_order_cancel_reorder(&at).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_32_concurrent_orders_on_postgres_exactly_one_wins() {
    let at = spawn_services(Store::Postgres).await;
    support::one_of_32_concurrent_orders_wins(&at).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_flow_runs_across_separate_services_on_nats_and_mongo() {
    let at = spawn_services(Store::Mongo).await;
    support::sell_order_cancel_reorder(&at).await;
}
