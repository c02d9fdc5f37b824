use ticketing_core::ticketing::events::{
    ExpirationComplete, OrderCancelled, OrderCompleted, PaymentCreated, TicketCreated,
    TicketUpdated,
};
use ticketing_core::ticketing::reservation::OrderStatus;
use ticketing_core::{Bus, Event, Id, Publisher};

use crate::helpers::{Placed, TestApp, spawn_app};

const GROUP: &str = "orders-service";

async fn publish<E: Event>(app: &TestApp, event: &E) {
    Publisher::<E>::new(app.bus.as_dyn())
        .publish(event)
        .await
        .unwrap();
}

fn created(id: Id) -> TicketCreated {
    TicketCreated {
        id,
        version: 0,
        title: "concert".into(),
        price: "20".parse().unwrap(),
        user_id: Id::new(),
    }
}

fn updated(id: Id, version: u64, title: &str) -> TicketUpdated {
    TicketUpdated {
        id,
        version,
        title: title.into(),
        price: "25.5".parse().unwrap(),
        user_id: Id::new(),
        order_id: None,
    }
}

/// The replica's title and version.
async fn replica_of(app: &TestApp, id: Id) -> (String, u64) {
    let replica = app.tickets.get(&id).await.unwrap();
    (replica.title, replica.version)
}

/// The replica's title, price in cents and version.
async fn priced_replica_of(app: &TestApp, id: Id) -> (String, u64, u64) {
    let replica = app.tickets.get(&id).await.unwrap();
    (replica.title, replica.price.cents(), replica.version)
}

#[tokio::test]
async fn ticket_created_stores_a_replica_and_acks() {
    let app = spawn_app().await;
    let id = Id::new();
    publish(&app, &created(id)).await;
    app.settled().await;
    assert_eq!(
        priced_replica_of(&app, id).await,
        ("concert".into(), 2000, 0)
    );
    let stats = app.bus.group_stats("ticket:created", GROUP).unwrap();
    assert_eq!((stats.acked, stats.dead_lettered), (1, 0));
}

#[tokio::test]
async fn a_redelivered_ticket_created_is_acked() {
    let app = spawn_app().await;
    app.bus.faults().duplicate_next_delivery("ticket:created");
    publish(&app, &created(Id::new())).await;
    app.settled().await;
    let stats = app.bus.group_stats("ticket:created", GROUP).unwrap();
    assert_eq!(
        (
            stats.delivered,
            stats.acked,
            stats.nacked,
            stats.dead_lettered
        ),
        (2, 2, 0, 0)
    );
}

#[tokio::test]
async fn ticket_updated_applies_title_price_and_version() {
    let app = spawn_app().await;
    let id = Id::new();
    publish(&app, &created(id)).await;
    publish(&app, &updated(id, 1, "new title")).await;
    app.settled().await;
    assert_eq!(
        priced_replica_of(&app, id).await,
        ("new title".into(), 2550, 1)
    );
}

#[tokio::test]
async fn a_skipped_version_is_not_acked_until_the_gap_is_filled() {
    let app = spawn_app().await;
    let id = Id::new();
    publish(&app, &created(id)).await;
    app.settled().await;
    app.bus.faults().hold("ticket:updated");
    publish(&app, &updated(id, 1, "v1")).await;
    publish(&app, &updated(id, 2, "v2")).await;
    // Version 2 first: a gap, retried; version 1 fills it.
    app.bus.faults().release(
        "ticket:updated",
        ticketing_bus::memory::ReleaseOrder::Reversed,
    );
    app.settled().await;
    assert_eq!(replica_of(&app, id).await, ("v2".into(), 2));
    let stats = app.bus.group_stats("ticket:updated", GROUP).unwrap();
    assert!(stats.nacked >= 1, "{stats:?}");
    assert_eq!((stats.acked, stats.dead_lettered), (2, 0));
}

#[tokio::test]
async fn a_duplicate_update_is_acked_without_changes() {
    let app = spawn_app().await;
    let id = Id::new();
    publish(&app, &created(id)).await;
    publish(&app, &updated(id, 1, "v1")).await;
    app.settled().await;
    let stale = ticketing_core::OutgoingMessage::new(
        "ticket:updated",
        serde_json::to_vec(&updated(id, 1, "stale copy")).unwrap(),
    );
    ticketing_core::Bus::publish(&app.bus, stale).await.unwrap();
    app.settled().await;
    assert_eq!(app.tickets.get(&id).await.unwrap().title, "v1");
}

#[tokio::test]
async fn expiration_cancels_the_order_publishes_and_acks() {
    let app = spawn_app().await;
    let Placed { ticket, order, .. } = app.placed_order().await;
    let order_id = Id::parse(order["id"].as_str().unwrap()).unwrap();
    publish(&app, &ExpirationComplete { order_id }).await;
    app.settled().await;
    let stored = app.orders.get(order_id).await.unwrap();
    assert_eq!((stored.status, stored.version), (OrderStatus::Cancelled, 1));
    let events = app.bus.published::<OrderCancelled>();
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].id, events[0].version, events[0].ticket.id),
        (order_id, 1, ticket.id)
    );
    assert!(!app.orders.is_reserved(ticket.id).await.unwrap());
}

#[tokio::test]
async fn expiration_leaves_a_complete_order_alone() {
    let app = spawn_app().await;
    let Placed { order, .. } = app.placed_order().await;
    let order_id = Id::parse(order["id"].as_str().unwrap()).unwrap();
    app.orders
        .set_status(order_id, 0, OrderStatus::Complete)
        .await
        .unwrap();
    publish(&app, &ExpirationComplete { order_id }).await;
    app.settled().await;
    assert_eq!(
        app.orders.get(order_id).await.unwrap().status,
        OrderStatus::Complete
    );
    assert!(app.bus.published::<OrderCancelled>().is_empty());
    assert_eq!(
        app.bus
            .group_stats("expiration:complete", GROUP)
            .unwrap()
            .acked,
        1
    );
}

/// `ticket:created` reaches the orders service `lag` after two updates of the same ticket.
async fn updates_that_overtake_their_creation_by(lag: std::time::Duration) -> (TestApp, Id) {
    let app = spawn_app().await;
    let id = Id::new();
    app.bus.faults().delay_next("ticket:created", 1, lag);
    publish(&app, &created(id)).await;
    publish(&app, &updated(id, 1, "v1")).await;
    publish(&app, &updated(id, 2, "v2")).await;
    // Paused clock: hours pass in no real time.
    tokio::time::timeout(lag * 2, app.bus.settled())
        .await
        .expect("settles");
    (app, id)
}

/// Asserts that the replica caught up `lag` behind with no dead letter; the updates' stats.
async fn caught_up_from(lag: std::time::Duration) -> ticketing_bus::memory::GroupStats {
    let (app, id) = updates_that_overtake_their_creation_by(lag).await;
    assert_eq!(replica_of(&app, id).await, ("v2".to_owned(), 2));
    let stats = app.bus.group_stats("ticket:updated", GROUP).unwrap();
    assert_eq!((stats.acked, stats.dead_lettered), (2, 0), "{stats:?}");
    stats
}

#[tokio::test(start_paused = true)]
async fn a_replica_ten_minutes_behind_catches_up_with_no_dead_letter() {
    let stats = caught_up_from(std::time::Duration::from_secs(600)).await;
    assert!(stats.nacked >= 10, "it waited: {stats:?}");
}

#[tokio::test(start_paused = true)]
async fn a_replica_two_hours_behind_catches_up_with_no_dead_letter() {
    let stats = caught_up_from(std::time::Duration::from_secs(2 * 3600)).await;
    // Long waits are retried less and less often (at most once a minute), not every second.
    assert!(stats.nacked < 1000, "{stats:?}");
}

#[tokio::test(start_paused = true)]
async fn an_update_still_waiting_past_the_gap_horizon_is_dead_lettered_with_its_reason() {
    let (app, _) =
        updates_that_overtake_their_creation_by(std::time::Duration::from_secs(7 * 3600)).await;
    let letters = ticketing_core::Bus::dead_letters(&app.bus).await.unwrap();
    assert_eq!(letters.len(), 2, "{letters:?}");
    assert!(
        letters
            .iter()
            .all(|l| l.reason.contains("past the gap horizon")
                && l.reason.contains("version gap on ticket")),
        "{letters:?}"
    );
}

async fn placed_order(app: &TestApp) -> (Id, Id) {
    let Placed { ticket, order, .. } = app.placed_order().await;
    (Id::parse(order["id"].as_str().unwrap()).unwrap(), ticket.id)
}

fn paid(order_id: Id) -> PaymentCreated {
    PaymentCreated {
        id: Id::new(),
        order_id,
        stripe_id: "ch_test".into(),
    }
}

#[tokio::test]
async fn a_payment_completes_the_order_and_announces_it_once() {
    let app = spawn_app().await;
    let (order_id, ticket_id) = placed_order(&app).await;
    let payment = paid(order_id);
    publish(&app, &payment).await;
    app.settled().await;
    let stored = app.orders.get(order_id).await.unwrap();
    assert_eq!((stored.status, stored.version), (OrderStatus::Complete, 1));
    let events = app.bus.published::<OrderCompleted>();
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].id, events[0].version, events[0].ticket.id),
        (order_id, 1, ticket_id)
    );
    // A repeat of the payment changes nothing and announces nothing.
    app.bus
        .publish(ticketing_core::OutgoingMessage::new(
            "payment:created",
            serde_json::to_vec(&payment).unwrap(),
        ))
        .await
        .unwrap();
    app.settled().await;
    assert_eq!(app.orders.get(order_id).await.unwrap().version, 1);
    assert_eq!(app.bus.published::<OrderCompleted>().len(), 1);
    // A complete order never expires.
    publish(&app, &ExpirationComplete { order_id }).await;
    app.settled().await;
    assert_eq!(
        app.orders.get(order_id).await.unwrap().status,
        OrderStatus::Complete
    );
    assert!(app.bus.published::<OrderCancelled>().is_empty());
}

#[tokio::test]
async fn a_payment_that_lost_the_race_with_expiry_leaves_the_order_cancelled() {
    let app = spawn_app().await;
    let (order_id, _) = placed_order(&app).await;
    publish(&app, &ExpirationComplete { order_id }).await;
    app.settled().await;
    publish(&app, &paid(order_id)).await;
    app.settled().await;
    let stored = app.orders.get(order_id).await.unwrap();
    assert_eq!((stored.status, stored.version), (OrderStatus::Cancelled, 1));
    assert!(app.bus.published::<OrderCompleted>().is_empty());
    assert!(app.bus.dead_letters().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_payment_for_an_unknown_order_is_dead_lettered_with_its_reason() {
    let app = spawn_app().await;
    publish(&app, &paid(Id::new())).await;
    app.settled().await;
    let letters = app.bus.dead_letters().await.unwrap();
    assert_eq!(letters.len(), 1);
    assert!(
        letters[0].reason.contains("unknown order"),
        "{}",
        letters[0].reason
    );
}
