//! The expiration listener: nothing before `expiresAt`, one event after. Real time: the
//! window is the wall clock's.

use std::time::Duration;

use chrono::Utc;
use ticketing_bus::memory::InMemoryBus;
use ticketing_core::events::{ExpirationComplete, OrderCreated, OrderCreatedTicket};
use ticketing_core::reservation::OrderStatus;
use ticketing_core::{Id, Publisher};
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn an_order_expires_when_its_window_closes_and_not_before() {
    let bus = InMemoryBus::new();
    let token = CancellationToken::new();
    let listeners = ticketing_expiration::spawn_listeners(&bus.as_dyn(), &token)
        .await
        .unwrap();
    let order = OrderCreated {
        id: Id::new(),
        version: 0,
        status: OrderStatus::Created,
        user_id: Id::new(),
        expires_at: Utc::now() + chrono::Duration::milliseconds(1500),
        ticket: OrderCreatedTicket {
            id: Id::new(),
            price: "20".parse().unwrap(),
        },
    };
    Publisher::<OrderCreated>::new(bus.as_dyn())
        .publish(&order)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(
        bus.published::<ExpirationComplete>().is_empty(),
        "expired early"
    );
    tokio::time::timeout(Duration::from_secs(10), bus.settled())
        .await
        .unwrap();
    assert!(Utc::now() >= order.expires_at);
    assert_eq!(
        bus.published::<ExpirationComplete>(),
        vec![ExpirationComplete { order_id: order.id }]
    );
    let stats = bus
        .group_stats("order:created", "expiration-service")
        .unwrap();
    assert_eq!((stats.acked, stats.dead_lettered), (1, 0));
    for handle in listeners {
        handle.stop().await;
    }
}

#[tokio::test]
async fn an_order_already_past_its_window_expires_at_once() {
    let bus = InMemoryBus::new();
    let token = CancellationToken::new();
    let _listeners = ticketing_expiration::spawn_listeners(&bus.as_dyn(), &token)
        .await
        .unwrap();
    let order_id = Id::new();
    let order = OrderCreated {
        id: order_id,
        version: 0,
        status: OrderStatus::Created,
        user_id: Id::new(),
        expires_at: Utc::now() - chrono::Duration::seconds(1),
        ticket: OrderCreatedTicket {
            id: Id::new(),
            price: "20".parse().unwrap(),
        },
    };
    Publisher::<OrderCreated>::new(bus.as_dyn())
        .publish(&order)
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), bus.settled())
        .await
        .unwrap();
    assert_eq!(
        bus.published::<ExpirationComplete>(),
        vec![ExpirationComplete { order_id }]
    );
}
