//! The inventory on PostgreSQL (a schema per test; the warehouse's own migrations beside the
//! SDK's, its changes and their events in its own transactions), in real time.

#[macro_use]
mod scenarios;

use ticketing_store::StoreSettings;

async fn db() -> ticketing_store::Database {
    let settings = StoreSettings::Postgres {
        url: ticketing_test_live::database_url(),
        schema: Some(ticketing_test_live::fresh_pg_schema("inventory").await),
        max_connections: Some(8),
        min_connections: None,
        timeout_seconds: None,
    };
    scenarios::opened(settings).await
}

scenario_tests!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    db()
);

#[tokio::test]
async fn the_schema_holds_the_services_tables_and_the_sdks_never_the_ticketing_ones() {
    let ticketing_store::Database::Postgres(pg) = db().await else {
        panic!("postgres")
    };
    inventory::Inventory::open(&ticketing_store::Database::Postgres(pg.clone()))
        .await
        .expect("open");
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = current_schema() ORDER BY 1",
    )
    .fetch_all(pg.pool())
    .await
    .expect("tables");
    assert_eq!(
        tables,
        [
            "_sqlx_migrations",
            "_ticketing_sdk_migrations",
            "listings",
            "outbox",
            "outbox_lease",
            "stock",
            "watched_items"
        ]
    );
}
