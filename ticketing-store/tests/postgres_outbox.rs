//! The PostgreSQL outbox across processes: a commit through another pool (another replica of
//! the service) wakes the relay through LISTEN/NOTIFY, also for a schema name too long to be a
//! channel name.
#![cfg(feature = "postgres")]

use std::time::Duration;

use ticketing_core::outbox::Outbox;
use ticketing_core::{Id, OutgoingMessage, Version};
use ticketing_store::postgres::{PgDatabase, append};

fn announce(id: &Id, version: Version) -> Vec<OutgoingMessage> {
    vec![
        OutgoingMessage::new("parcel:shipped", version.to_string())
            .with_message_id(format!("{id}:{version}")),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_of_another_replica_wakes_the_relay_through_notify() {
    // 60 characters: with any prefix, too long for a channel name.
    let base = ticketing_test_live::fresh_pg_schema("outbox").await;
    let schema = format!("{base}_{}", "x".repeat(60 - base.len().min(59) - 1));
    let url = ticketing_test_live::database_url();
    let relay_side = PgDatabase::connect_schema(&url, &schema)
        .await
        .expect("connect");
    let writer_side = PgDatabase::connect_schema(&url, &schema)
        .await
        .expect("connect");
    let outbox = relay_side.outbox();

    // Start listening, then let the LISTEN connection come up (its first wake-up is spent).
    let _ = tokio::time::timeout(Duration::from_secs(5), outbox.changed()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let woken = tokio::spawn(async move {
        tokio::time::timeout(Duration::from_secs(10), outbox.changed())
            .await
            .is_ok()
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The writer's own transaction, with an event appended to the outbox inside it.
    let mut tx = writer_side.pool().begin().await.expect("begin");
    let id = Id::new();
    append(&mut tx, &format!("parcel:{id}"), &announce(&id, 0))
        .await
        .expect("append");
    tx.commit().await.expect("commit");
    assert!(
        woken.await.expect("task"),
        "the other pool's commit woke the relay"
    );
    assert_eq!(
        relay_side
            .outbox()
            .pending(10)
            .await
            .expect("pending")
            .len(),
        1
    );
}
