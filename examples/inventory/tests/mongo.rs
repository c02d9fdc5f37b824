//! The inventory on a MongoDB-wire server (a database per test; each stock change one
//! single-document write of the item and its event), in real time.

mod scenarios;

use ticketing_store::StoreSettings;

async fn db() -> ticketing_store::Database {
    let settings = StoreSettings::Mongo {
        uri: ticketing_test_live::mongo_uri(),
        database: Some(ticketing_test_live::fresh_mongo_database("inventory").await),
        timeout_seconds: None,
    };
    settings
        .open("inventory")
        .await
        .unwrap_or_else(|e| panic!("{settings} must be running (scripts/test starts it): {e}"))
}

macro_rules! on_mongo {
    ($($case:ident)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                scenarios::$case(db().await).await;
            }
        )*
    };
}

on_mongo!(
    a_received_item_is_listed
    a_duplicate_delivery_is_acknowledged_and_changes_nothing
    an_adjustment_that_overtakes_its_receipt_waits_and_converges
    a_malformed_event_is_dead_lettered_with_its_reason
    events_leave_through_the_outbox_only_after_their_change_commits
    the_alerts_replica_starts_mid_stream
    under_the_default_rule_the_same_replica_would_wait_for_version_0
);
