//! The inventory on the in-memory stores and bus, on tokio's paused clock: waits and retries
//! take no real time.

#[macro_use]
mod scenarios;

use ticketing_store::StoreSettings;

async fn db() -> ticketing_store::Database {
    scenarios::opened(StoreSettings::Memory).await
}

scenario_tests!(
    #[tokio::test(start_paused = true)]
    db()
);
