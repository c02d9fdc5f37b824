//! Every backend's suite runs on databases opened through `StoreSettings`, the entry point
//! services use; live ones on a schema or database of their own (the live test kit).
#![allow(dead_code, unreachable_pub)]

use ticketing_core::conformance::store::Stores;
use ticketing_store::{Database, StoreSettings};

/// The conformance suite's view of a database: one store per role.
pub fn stores_of(db: &Database) -> Stores {
    Stores {
        users: db.users(),
        tickets: db.tickets(),
        order_replicas: db.order_replicas(),
        ticket_replicas: db.ticket_replicas(),
        orders: db.orders(),
        outbox: db.outbox(),
    }
}

/// Opens `settings`, saying what to start when the server is not there.
pub async fn open(settings: StoreSettings) -> Database {
    settings
        .open_ticketing("test")
        .await
        .unwrap_or_else(|e| panic!("{settings} must be running (scripts/test starts it): {e}"))
}

/// PostgreSQL in a schema of its own, with a pool of `max_connections`.
pub async fn postgres(max_connections: u32) -> Database {
    open(StoreSettings::Postgres {
        url: ticketing_test_live::database_url(),
        schema: Some(ticketing_test_live::fresh_pg_schema("test").await),
        max_connections: Some(max_connections),
        min_connections: None,
        timeout_seconds: None,
    })
    .await
}

/// MongoDB in a database of its own.
pub async fn mongo() -> Database {
    open(StoreSettings::Mongo {
        uri: ticketing_test_live::mongo_uri(),
        database: Some(ticketing_test_live::fresh_mongo_database("test").await),
        timeout_seconds: None,
    })
    .await
}
