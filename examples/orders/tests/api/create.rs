use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use ticketing_core::ticketing::events::OrderCreated;
use ticketing_core::ticketing::reservation::OrderStatus;
use ticketing_test_app as kit;

use crate::helpers::{Placed, WINDOW, assert_error, assert_field_error, signin, spawn_app};

#[tokio::test]
async fn ordering_requires_a_session() {
    let app = spawn_app().await;
    let response = app
        .post_order(
            None,
            &json!({"ticketId": ticketing_core::Id::new().to_string()}),
        )
        .await;
    assert_error(&response, 401, "Not authorized");
}

#[tokio::test]
async fn a_missing_or_malformed_ticket_id_is_a_400() {
    let app = spawn_app().await;
    let (cookie, _) = signin(&app.keys);
    for body in [
        json!({}),
        json!({"ticketId": ""}),
        json!({"ticketId": "nope"}),
        json!({"ticketId": 5}),
    ] {
        let response = app.post_order(Some(&cookie), &body).await;
        assert_field_error(&response, "TicketId must be provided", "ticketId");
    }
}

#[tokio::test]
async fn an_unknown_ticket_is_a_404() {
    let app = spawn_app().await;
    let (cookie, _) = signin(&app.keys);
    let response = app.order_ticket(&cookie, ticketing_core::Id::new()).await;
    assert_error(&response, 404, "Not Found");
}

#[tokio::test]
async fn a_reserved_ticket_is_a_400() {
    let app = spawn_app().await;
    let ticket = app.seed_ticket("concert").await;
    let (buyer, _) = signin(&app.keys);
    let (late, _) = signin(&app.keys);
    assert_eq!(app.order_ticket(&buyer, ticket.id).await.code(), 201);
    let response = app.order_ticket(&late, ticket.id).await;
    assert_error(&response, 400, "Ticket is already reserved");
}

#[tokio::test]
async fn an_order_reserves_the_ticket_and_expires_after_the_window() {
    let app = spawn_app().await;
    let ticket = app.seed_ticket("concert").await;
    let (cookie, user) = signin(&app.keys);
    let before = app.clock.now();
    let response = app.order_ticket(&cookie, ticket.id).await;
    let after = app.clock.now();
    assert_eq!(response.code(), 201);
    let order: Value = response.json();
    assert_eq!(order["status"], "created");
    assert_eq!(order["version"], 0);
    assert_eq!(order["userId"], user.to_string());
    assert_eq!(
        order["ticket"],
        json!({"id": ticket.id.to_string(), "title": "concert", "price": 20, "version": 0})
    );
    let expires: DateTime<Utc> = order["expiresAt"].as_str().unwrap().parse().unwrap();
    let window = chrono::Duration::from_std(WINDOW).unwrap();
    assert!(
        expires >= before + window - chrono::Duration::milliseconds(1) && expires <= after + window
    );
    assert!(order["expiresAt"].as_str().unwrap().ends_with('Z'));
}

#[tokio::test]
async fn an_order_publishes_order_created() {
    let app = spawn_app().await;
    let Placed {
        ticket,
        user,
        order,
        ..
    } = app.placed_order().await;
    app.settled().await;
    let events = app.bus.published::<OrderCreated>();
    assert_eq!(events.len(), 1);
    let event = &events[0];
    assert_eq!(event.id.to_string(), order["id"].as_str().unwrap());
    assert_eq!(
        (
            event.version,
            event.status,
            event.user_id,
            event.ticket.id,
            event.ticket.price
        ),
        (0, OrderStatus::Created, user, ticket.id, ticket.price)
    );
}

#[tokio::test]
async fn of_32_concurrent_orders_for_one_ticket_exactly_one_is_created() {
    let app = spawn_app().await;
    let ticket = app.seed_ticket("hot").await;
    let cookies: Vec<String> = (0..32).map(|_| signin(&app.keys).0).collect();
    let responses =
        futures::future::join_all(cookies.iter().map(|c| app.order_ticket(c, ticket.id))).await;
    let statuses: Vec<u16> = responses.iter().map(|r| r.code()).collect();
    kit::assert_one_order_won(&statuses);
    app.settled().await;
    assert_eq!(app.bus.published::<OrderCreated>().len(), 1);
}

#[tokio::test]
async fn a_ticket_is_orderable_again_once_its_order_is_cancelled() {
    let app = spawn_app().await;
    let Placed {
        ticket,
        cookie,
        order: first,
        ..
    } = app.placed_order().await;
    assert_eq!(
        app.delete(
            Some(&cookie),
            &format!("/api/orders/{}", first["id"].as_str().unwrap())
        )
        .await
        .code(),
        204
    );
    assert_eq!(app.order_ticket(&cookie, ticket.id).await.code(), 201);
}
