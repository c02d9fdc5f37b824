//! The expiration listener: nothing before `expiresAt`, one event after. On tokio's paused
//! clock: a 15-minute window passes in no real time.

use std::time::Duration;

use ticketing_bus::memory::InMemoryBus;
use ticketing_core::ticketing::events::{ExpirationComplete, OrderCreated, OrderCreatedTicket};
use ticketing_core::ticketing::reservation::OrderStatus;
use ticketing_core::{Clock, Id, ListenerHandle, Publisher};
use tokio_util::sync::CancellationToken;

const WINDOW: Duration = Duration::from_secs(15 * 60);

async fn start(bus: &InMemoryBus, clock: &Clock) -> Vec<ListenerHandle> {
    ticketing_expiration::spawn_listeners(&bus.as_dyn(), clock.clone(), &CancellationToken::new())
        .await
        .unwrap()
}

fn order_expiring_at(expires_at: chrono::DateTime<chrono::Utc>) -> OrderCreated {
    OrderCreated {
        id: Id::new(),
        version: 0,
        status: OrderStatus::Created,
        user_id: Id::new(),
        expires_at,
        ticket: OrderCreatedTicket {
            id: Id::new(),
            price: "20".parse().unwrap(),
        },
    }
}

#[tokio::test(start_paused = true)]
async fn an_order_expires_when_its_window_closes_and_not_before() {
    let bus = InMemoryBus::new();
    let clock = Clock::tokio();
    let listeners = start(&bus, &clock).await;
    let order = order_expiring_at(clock.now() + chrono::Duration::from_std(WINDOW).unwrap());
    Publisher::<OrderCreated>::new(bus.as_dyn())
        .publish(&order)
        .await
        .unwrap();

    tokio::time::sleep(WINDOW - Duration::from_secs(1)).await;
    assert!(
        bus.published::<ExpirationComplete>().is_empty(),
        "expired a second early"
    );
    bus.settled().await;
    assert!(clock.now() >= order.expires_at);
    assert!(
        clock.now() - order.expires_at < chrono::Duration::seconds(1),
        "expired late: {}",
        clock.now() - order.expires_at
    );
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

#[tokio::test(start_paused = true)]
async fn an_order_already_past_its_window_expires_at_once() {
    let bus = InMemoryBus::new();
    let clock = Clock::tokio();
    let _listeners = start(&bus, &clock).await;
    let order = order_expiring_at(clock.now() - chrono::Duration::seconds(1));
    Publisher::<OrderCreated>::new(bus.as_dyn())
        .publish(&order)
        .await
        .unwrap();
    let started = clock.now();
    bus.settled().await;
    assert_eq!(
        bus.published::<ExpirationComplete>(),
        vec![ExpirationComplete { order_id: order.id }]
    );
    assert_eq!(clock.now(), started, "no waiting");
}
