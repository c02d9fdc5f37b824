use chrono::Utc;
use ticketing_core::ticketing::events::{
    OrderCancelled, OrderCancelledTicket, OrderCompleted, OrderCreated, OrderCreatedTicket,
    TicketUpdated,
};
use ticketing_core::ticketing::reservation::OrderStatus;
use ticketing_core::ticketing::store::Ticket;
use ticketing_core::{Bus, Id, Publisher};

use crate::helpers::{TestApp, spawn_app};

const GROUP: &str = "tickets-service";

fn order_created(order: Id, ticket: &Ticket) -> OrderCreated {
    OrderCreated {
        id: order,
        version: 0,
        status: OrderStatus::Created,
        user_id: Id::new(),
        expires_at: Utc::now(),
        ticket: OrderCreatedTicket {
            id: ticket.id,
            price: ticket.price,
        },
    }
}

fn order_cancelled(order: Id, version: u64, ticket: &Ticket) -> OrderCancelled {
    OrderCancelled {
        id: order,
        version,
        ticket: OrderCancelledTicket { id: ticket.id },
    }
}

async fn publish<E: ticketing_core::Event>(app: &TestApp, event: &E) {
    Publisher::<E>::new(app.bus.as_dyn())
        .publish(event)
        .await
        .unwrap();
}

#[tokio::test]
async fn order_created_reserves_the_ticket_publishes_and_acks() {
    let app = spawn_app().await;
    let ticket = app.seed_ticket(Id::new(), None).await;
    let order = Id::new();
    publish(&app, &order_created(order, &ticket)).await;
    app.settled().await;
    let stored = app.tickets.get(ticket.id).await.unwrap();
    assert_eq!((stored.order_id, stored.version), (Some(order), 1));
    let events = app.bus.published::<TicketUpdated>();
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].id, events[0].version, events[0].order_id),
        (ticket.id, 1, Some(order))
    );
    let stats = app.bus.group_stats("order:created", GROUP).unwrap();
    assert_eq!((stats.acked, stats.dead_lettered), (1, 0));
}

#[tokio::test]
async fn a_redelivered_order_created_is_acked_without_a_second_reservation() {
    let app = spawn_app().await;
    let ticket = app.seed_ticket(Id::new(), None).await;
    app.bus.faults().duplicate_next_delivery("order:created");
    publish(&app, &order_created(Id::new(), &ticket)).await;
    app.settled().await;
    assert_eq!(app.tickets.get(ticket.id).await.unwrap().version, 1);
    assert_eq!(app.bus.published::<TicketUpdated>().len(), 1);
    let stats = app.bus.group_stats("order:created", GROUP).unwrap();
    assert_eq!(
        (stats.delivered, stats.acked, stats.dead_lettered),
        (2, 2, 0)
    );
}

#[tokio::test]
async fn order_cancelled_releases_the_ticket_publishes_and_acks() {
    let app = spawn_app().await;
    let ticket = app.seed_ticket(Id::new(), None).await;
    let order = Id::new();
    publish(&app, &order_created(order, &ticket)).await;
    publish(&app, &order_cancelled(order, 1, &ticket)).await;
    app.settled().await;
    let stored = app.tickets.get(ticket.id).await.unwrap();
    assert_eq!((stored.order_id, stored.version), (None, 2));
    let events = app.bus.published::<TicketUpdated>();
    assert_eq!(events.len(), 2);
    assert_eq!((events[1].version, events[1].order_id), (2, None));
    let stats = app.bus.group_stats("order:cancelled", GROUP).unwrap();
    assert_eq!((stats.acked, stats.dead_lettered), (1, 0));
}

#[tokio::test]
async fn a_cancellation_of_an_order_not_holding_the_ticket_changes_nothing() {
    use ticketing_core::ticketing::store::OrderReplica;
    let app = spawn_app().await;
    let holder = Id::new();
    let ticket = app.seed_ticket(Id::new(), Some(holder)).await;
    let other = Id::new();
    app.order_replicas
        .apply(&OrderReplica {
            id: other,
            ticket_id: ticket.id,
            status: OrderStatus::Created,
            version: 0,
        })
        .await
        .unwrap();
    publish(&app, &order_cancelled(other, 1, &ticket)).await;
    app.settled().await;
    assert_eq!(
        app.tickets.get(ticket.id).await.unwrap(),
        ticket,
        "unchanged"
    );
    assert!(
        app.bus.published::<TicketUpdated>().is_empty(),
        "nothing published"
    );
    assert_eq!(
        app.order_replicas.get(&other).await.unwrap().status,
        OrderStatus::Cancelled
    );
    let stats = app.bus.group_stats("order:cancelled", GROUP).unwrap();
    assert_eq!((stats.acked, stats.dead_lettered), (1, 0));
}

#[tokio::test]
async fn a_redelivered_cancellation_is_acked_as_a_duplicate() {
    let app = spawn_app().await;
    let ticket = app.seed_ticket(Id::new(), None).await;
    let (first, second) = (Id::new(), Id::new());
    publish(&app, &order_created(first, &ticket)).await;
    publish(&app, &order_cancelled(first, 1, &ticket)).await;
    app.settled().await;
    publish(&app, &order_created(second, &ticket)).await;
    app.settled().await;
    // The broker delivers the first order's cancellation again, after its dedup window.
    app.bus
        .publish(ticketing_core::OutgoingMessage::new(
            "order:cancelled",
            serde_json::to_vec(&order_cancelled(first, 1, &ticket)).unwrap(),
        ))
        .await
        .unwrap();
    app.settled().await;
    let stored = app.tickets.get(ticket.id).await.unwrap();
    assert_eq!((stored.order_id, stored.version), (Some(second), 3));
    let stats = app.bus.group_stats("order:cancelled", GROUP).unwrap();
    assert_eq!((stats.acked, stats.nacked, stats.dead_lettered), (2, 0, 0));
}

#[tokio::test]
async fn a_cancellation_that_overtakes_its_creation_waits_for_it() {
    let app = spawn_app().await;
    let ticket = app.seed_ticket(Id::new(), None).await;
    let order = Id::new();
    // The cancellation is delivered first; the creation a moment later.
    app.bus
        .faults()
        .delay_next("order:created", 1, std::time::Duration::from_millis(300));
    publish(&app, &order_created(order, &ticket)).await;
    publish(&app, &order_cancelled(order, 1, &ticket)).await;
    app.settled().await;
    let stored = app.tickets.get(ticket.id).await.unwrap();
    assert_eq!(
        (stored.order_id, stored.version),
        (None, 2),
        "reserved, then released"
    );
    let stats = app.bus.group_stats("order:cancelled", GROUP).unwrap();
    assert!(
        stats.nacked >= 1,
        "the early cancellation was retried: {stats:?}"
    );
    assert_eq!((stats.acked, stats.dead_lettered), (1, 0));
}

#[tokio::test(start_paused = true)]
async fn a_cancellation_an_hour_ahead_of_its_creation_still_releases_the_ticket() {
    let app = spawn_app().await;
    let ticket = app.seed_ticket(Id::new(), None).await;
    let order = Id::new();
    let lag = std::time::Duration::from_secs(3600);
    app.bus.faults().delay_next("order:created", 1, lag);
    publish(&app, &order_created(order, &ticket)).await;
    publish(&app, &order_cancelled(order, 1, &ticket)).await;
    // Paused clock: the hour passes in no real time.
    tokio::time::timeout(lag * 2, app.bus.settled())
        .await
        .expect("settles");
    let stored = app.tickets.get(ticket.id).await.unwrap();
    assert_eq!(
        (stored.order_id, stored.version),
        (None, 2),
        "reserved, then released: never held by a cancelled order"
    );
    assert!(
        ticketing_core::Bus::dead_letters(&app.bus)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn an_order_for_an_unknown_ticket_is_dead_lettered() {
    let app = spawn_app().await;
    let ghost = Ticket {
        id: Id::new(),
        title: "ghost".into(),
        price: "1".parse().unwrap(),
        user_id: Id::new(),
        version: 0,
        order_id: None,
    };
    publish(&app, &order_created(Id::new(), &ghost)).await;
    app.settled().await;
    let letters = app.bus.dead_letters().await.unwrap();
    assert_eq!(letters.len(), 1);
    assert!(
        letters[0].reason.contains("unknown ticket"),
        "{}",
        letters[0].reason
    );
}

#[tokio::test]
async fn a_malformed_order_event_is_dead_lettered_with_its_reason() {
    let app = spawn_app().await;
    app.bus
        .publish(ticketing_core::OutgoingMessage::new(
            "order:created",
            r#"{"id": 1}"#,
        ))
        .await
        .unwrap();
    app.settled().await;
    let letters = app.bus.dead_letters().await.unwrap();
    assert_eq!(letters.len(), 1);
    assert!(
        letters[0].reason.contains("undecodable payload"),
        "{}",
        letters[0].reason
    );
}

#[tokio::test]
async fn a_reservation_is_announced_once_the_broker_accepts_it_again() {
    let app = spawn_app().await;
    let ticket = app.seed_ticket(Id::new(), None).await;
    let order = Id::new();
    app.bus.faults().fail_next_publish("ticket:updated");
    publish(&app, &order_created(order, &ticket)).await;
    app.settled().await;
    let stored = app.tickets.get(ticket.id).await.unwrap();
    assert_eq!(
        (stored.order_id, stored.version),
        (Some(order), 1),
        "reserved once"
    );
    let events = app.bus.published::<TicketUpdated>();
    assert_eq!(events.len(), 1, "announced by the relay's retry");
    assert_eq!((events[0].version, events[0].order_id), (1, Some(order)));
}

#[tokio::test]
async fn order_completed_records_the_order_and_keeps_the_ticket_held() {
    let app = spawn_app().await;
    let ticket = app.seed_ticket(Id::new(), None).await;
    let order = Id::new();
    // The completion overtakes the creation: it waits for it, then applies.
    publish(
        &app,
        &OrderCompleted {
            id: order,
            version: 1,
            ticket: OrderCancelledTicket { id: ticket.id },
        },
    )
    .await;
    publish(&app, &order_created(order, &ticket)).await;
    app.settled().await;
    let replica = app.order_replicas.get(&order).await.unwrap();
    assert_eq!(
        (replica.status, replica.version),
        (OrderStatus::Complete, 1)
    );
    let stored = app.tickets.get(ticket.id).await.unwrap();
    assert_eq!((stored.order_id, stored.version), (Some(order), 1));
    assert_eq!(
        app.bus.published::<TicketUpdated>().len(),
        1,
        "only the reservation changed the ticket"
    );
    let stats = app.bus.group_stats("order:completed", GROUP).unwrap();
    assert_eq!((stats.acked, stats.dead_lettered), (1, 0));
}
