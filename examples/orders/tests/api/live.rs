//! The orders service's listeners on PostgreSQL (`DATABASE_URL`, a schema of the test's own)
//! with the in-memory bus, so deliveries can be reordered at will.

use std::time::Duration;

use ticketing_bus::memory::ReleaseOrder;
use ticketing_core::ticketing::events::{TicketCreated, TicketUpdated};
use ticketing_core::{Bus, Clock, Id, Publisher};
use ticketing_orders::startup::{Orders, OrdersState};
use ticketing_store::StoreSettings;
use ticketing_test_app as kit;
use ticketing_test_live as live;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_rapid_updates_handled_concurrently_on_postgres_end_at_version_40() {
    let settings = StoreSettings::Postgres {
        url: live::database_url(),
        schema: Some(live::fresh_pg_schema("test").await),
        max_connections: None,
        min_connections: None,
        timeout_seconds: None,
    };
    let database = settings
        .open_ticketing("orders")
        .await
        .unwrap_or_else(|e| panic!("{settings} (scripts/test starts it): {e}"));
    let memory = kit::Memory::new().await;
    let state = OrdersState::new(
        &database,
        kit::keys(),
        Duration::from_secs(900),
        Clock::system(),
        &memory.bus(),
    );
    let replicas = state.tickets.clone();
    let _app = kit::spawn::<Orders>(state).await;

    let id = Id::new();
    let user_id = Id::new();
    let price = "10".parse().unwrap();
    Publisher::<TicketCreated>::new(memory.bus())
        .publish(&TicketCreated {
            id,
            version: 0,
            title: "v0".into(),
            price,
            user_id,
        })
        .await
        .unwrap();
    // Forty edits in a burst, delivered newest first: every one but the last waits.
    memory.bus.faults().hold("ticket:updated");
    let updates = Publisher::<TicketUpdated>::new(memory.bus());
    for version in 1..=40 {
        updates
            .publish(&TicketUpdated {
                id,
                version,
                title: format!("v{version}"),
                price,
                user_id,
                order_id: None,
            })
            .await
            .unwrap();
    }
    memory
        .bus
        .faults()
        .release("ticket:updated", ReleaseOrder::Reversed);
    tokio::time::timeout(Duration::from_secs(240), memory.bus.settled())
        .await
        .expect("settles");

    let replica = replicas.get(&id).await.unwrap();
    assert_eq!((replica.title.as_str(), replica.version), ("v40", 40));
    assert!(memory.bus.dead_letters().await.unwrap().is_empty());
    let stats = memory
        .bus
        .group_stats("ticket:updated", "orders-service")
        .unwrap();
    assert_eq!((stats.acked, stats.dead_lettered), (40, 0), "{stats:?}");
}
