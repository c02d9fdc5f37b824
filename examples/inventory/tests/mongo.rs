//! The inventory on a MongoDB-wire server (a database per test; each stock change one
//! single-document write of the item and its event), in real time.

#[macro_use]
mod scenarios;

use ticketing_store::StoreSettings;

async fn db() -> ticketing_store::Database {
    let settings = StoreSettings::Mongo {
        uri: ticketing_test_live::mongo_uri(),
        database: Some(ticketing_test_live::fresh_mongo_database("inventory").await),
        timeout_seconds: None,
    };
    scenarios::opened(settings).await
}

scenario_tests!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    db()
);
