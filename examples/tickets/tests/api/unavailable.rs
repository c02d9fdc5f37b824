//! A database that cannot be reached: store-backed requests are answered 503 with Retry-After
//! within the pool's acquire timeout, never a 500 after sqlx's 30 s.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use ticketing_store::postgres::PgDatabase;

use crate::helpers::{signin, spawn_app_with};

/// A PostgreSQL database nobody listens for (port 1 refuses at once), opened lazily as a pool
/// that lost its server would be.
fn unreachable_database() -> PgDatabase {
    let options: PgConnectOptions = "postgres://postgres@127.0.0.1:1/tickets"
        .parse()
        .expect("url");
    PgDatabase::from_pool(
        PgPoolOptions::new()
            .acquire_timeout(Duration::from_secs(1))
            .connect_lazy_with(options),
    )
}

#[tokio::test]
async fn requests_are_answered_503_with_retry_after_when_the_database_is_unreachable() {
    let app = spawn_app_with(|state| {
        let db = unreachable_database();
        state.tickets = Arc::new(db.tickets());
    })
    .await;
    let (cookie, _) = signin(&app.keys);
    let guard = Duration::from_secs(15);
    let listed = tokio::time::timeout(guard, app.get("/api/tickets"))
        .await
        .expect("answered, not hung");
    assert_eq!(listed.code(), 503);
    assert_eq!(listed.headers["retry-after"].to_str().expect("header"), "2");
    let body: serde_json::Value = listed.json();
    assert_eq!(
        body,
        json!({"errors": [{"message": "The service is temporarily unavailable; try again shortly"}]})
    );
    let created = tokio::time::timeout(
        guard,
        app.post_ticket(Some(&cookie), &json!({"title": "concert", "price": 20})),
    )
    .await
    .expect("answered, not hung");
    assert_eq!(created.code(), 503);
}
