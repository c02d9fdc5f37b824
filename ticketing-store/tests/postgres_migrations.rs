//! The SDK's migrations beside an application's own: their own history table, no ticketing
//! tables in a user's schema, and ticketing databases created before the split upgrading in
//! place.
#![cfg(all(feature = "postgres", feature = "ticketing"))]

use std::borrow::Cow;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use ticketing_store::postgres::{PgDatabase, SDK_MIGRATIONS_TABLE, TICKETING_MIGRATOR};

async fn tables(db: &PgDatabase) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = current_schema() ORDER BY 1",
    )
    .fetch_all(db.pool())
    .await
    .expect("tables")
}

async fn schema() -> (String, String) {
    (
        ticketing_test_live::database_url(),
        ticketing_test_live::fresh_pg_schema("migrate").await,
    )
}

#[tokio::test]
async fn a_users_schema_gets_the_outbox_and_never_the_ticketing_tables() {
    let (url, schema) = schema().await;
    let db = PgDatabase::connect_schema(&url, &schema)
        .await
        .expect("connect");
    assert_eq!(
        tables(&db).await,
        [SDK_MIGRATIONS_TABLE, "outbox", "outbox_lease"]
    );
}

#[tokio::test]
async fn the_applications_own_migrations_run_beside_the_sdks() {
    let (url, schema) = schema().await;
    let db = PgDatabase::connect_schema(&url, &schema)
        .await
        .expect("connect");
    // The application's migrator, on sqlx's default history table.
    let own = Migrator::with_migrations(vec![Migration::new(
        1,
        Cow::Borrowed("accounts"),
        MigrationType::Simple,
        sqlx::SqlSafeStr::into_sql_str(
            "CREATE TABLE accounts (id TEXT PRIMARY KEY, version BIGINT NOT NULL)",
        ),
        false,
    )]);
    own.run(db.pool())
        .await
        .expect("the application's migrations");
    // Both run again, in either order, without 'previously applied but missing'.
    db.migrate().await.expect("the SDK's again");
    own.run(db.pool()).await.expect("the application's again");
    let recorded: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(db.pool())
        .await
        .expect("count");
    assert_eq!(
        recorded, 1,
        "only the application's migration is in _sqlx_migrations"
    );
}

#[tokio::test]
async fn a_ticketing_database_created_before_the_split_upgrades_in_place() {
    let (url, schema) = schema().await;
    // What the services ran until now: the ticketing migrations alone, outbox included.
    let old = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_with(
            url.parse::<sqlx::postgres::PgConnectOptions>()
                .expect("url")
                .options([("search_path", schema.as_str())]),
        )
        .await
        .expect("pool");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA \"{schema}\"")))
        .execute(&old)
        .await
        .expect("schema");
    TICKETING_MIGRATOR
        .run(&old)
        .await
        .expect("the old migrations");
    sqlx::query("INSERT INTO outbox (key, subject, payload) VALUES ('ticket:1', 'ticket:created', '\\x7b7d')")
        .execute(&old)
        .await
        .expect("a pending event");
    // Today's code on the same schema.
    let db = ticketing_store::StoreSettings::Postgres {
        url,
        schema: Some(schema),
        max_connections: Some(2),
        min_connections: None,
        timeout_seconds: None,
    }
    .open_ticketing("tickets")
    .await
    .expect("upgrades in place");
    let ticketing_store::Database::Postgres(pg) = db else {
        panic!("postgres")
    };
    let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(pg.pool())
        .await
        .expect("count");
    assert_eq!(pending, 1, "the pending event is still there");
    let sdk: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM {SDK_MIGRATIONS_TABLE}"
    )))
    .fetch_one(pg.pool())
    .await
    .expect("count");
    assert_eq!(sdk, 1);
    let ticketing: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(pg.pool())
        .await
        .expect("count");
    assert_eq!(ticketing, TICKETING_MIGRATOR.iter().count() as i64);
}

#[tokio::test]
async fn the_ticketing_tables_come_after_the_sdks_outbox_too() {
    let (url, schema) = schema().await;
    let db = PgDatabase::connect_schema(&url, &schema)
        .await
        .expect("connect");
    db.migrate_ticketing()
        .await
        .expect("the ticketing tables after the outbox");
    db.migrate_ticketing().await.expect("again: nothing to do");
    let ticketing: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(db.pool())
        .await
        .expect("count");
    assert_eq!(ticketing, TICKETING_MIGRATOR.iter().count() as i64);
    let tables = tables(&db).await;
    for table in [
        "users",
        "tickets",
        "orders",
        "payments",
        "outbox",
        "outbox_lease",
    ] {
        assert!(tables.iter().any(|t| t == table), "{table} in {tables:?}");
    }
}
