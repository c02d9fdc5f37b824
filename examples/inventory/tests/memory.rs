//! The inventory on the in-memory stores and bus, on tokio's paused clock: waits and retries
//! take no real time.

mod scenarios;

use ticketing_store::StoreSettings;

async fn db() -> ticketing_store::Database {
    StoreSettings::Memory
        .open("inventory")
        .await
        .expect("memory")
}

macro_rules! on_memory {
    ($($case:ident)*) => {
        $(
            #[tokio::test(start_paused = true)]
            async fn $case() {
                scenarios::$case(db().await).await;
            }
        )*
    };
}

on_memory!(
    a_received_item_is_listed
    a_duplicate_delivery_is_acknowledged_and_changes_nothing
    an_adjustment_that_overtakes_its_receipt_waits_and_converges
    a_malformed_event_is_dead_lettered_with_its_reason
    events_leave_through_the_outbox_only_after_their_change_commits
    the_alerts_replica_starts_mid_stream
    under_the_default_rule_the_same_replica_would_wait_for_version_0
);
