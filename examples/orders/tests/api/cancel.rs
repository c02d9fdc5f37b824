use serde_json::Value;
use ticketing_core::ticketing::events::OrderCancelled;
use ticketing_core::ticketing::reservation::OrderStatus;

use crate::helpers::{Placed, assert_error, signin, spawn_app};

#[tokio::test]
async fn cancelling_marks_the_order_cancelled_and_bumps_the_version() {
    let app = spawn_app().await;
    let Placed { cookie, order, .. } = app.placed_order().await;
    let path = format!("/api/orders/{}", order["id"].as_str().unwrap());
    let response = app.delete(Some(&cookie), &path).await;
    assert_eq!(response.code(), 204);
    assert!(
        response.body.is_null() && response.text.is_empty(),
        "{response}"
    );
    let shown: Value = app.get(Some(&cookie), &path).await.json();
    assert_eq!(
        (shown["status"].as_str(), shown["version"].as_u64()),
        (Some("cancelled"), Some(1))
    );
}

#[tokio::test]
async fn cancelling_publishes_order_cancelled() {
    let app = spawn_app().await;
    let Placed {
        ticket,
        cookie,
        order,
        ..
    } = app.placed_order().await;
    app.delete(
        Some(&cookie),
        &format!("/api/orders/{}", order["id"].as_str().unwrap()),
    )
    .await;
    app.settled().await;
    let events = app.bus.published::<OrderCancelled>();
    assert_eq!(events.len(), 1);
    assert_eq!(
        (
            events[0].id.to_string(),
            events[0].version,
            events[0].ticket.id
        ),
        (order["id"].as_str().unwrap().to_owned(), 1, ticket.id)
    );
}

#[tokio::test]
async fn cancelling_a_cancelled_order_is_a_204_with_no_new_event() {
    let app = spawn_app().await;
    let Placed { cookie, order, .. } = app.placed_order().await;
    let path = format!("/api/orders/{}", order["id"].as_str().unwrap());
    assert_eq!(app.delete(Some(&cookie), &path).await.code(), 204);
    assert_eq!(app.delete(Some(&cookie), &path).await.code(), 204);
    app.settled().await;
    assert_eq!(app.bus.published::<OrderCancelled>().len(), 1);
    let shown: Value = app.get(Some(&cookie), &path).await.json();
    assert_eq!(shown["version"], 1);
}

#[tokio::test]
async fn a_complete_order_cannot_be_cancelled() {
    let app = spawn_app().await;
    let Placed { cookie, order, .. } = app.placed_order().await;
    let id = ticketing_core::Id::parse(order["id"].as_str().unwrap()).unwrap();
    app.orders
        .set_status(id, 0, OrderStatus::Complete)
        .await
        .unwrap();
    let response = app
        .delete(Some(&cookie), &format!("/api/orders/{id}"))
        .await;
    assert_error(&response, 400, "Cannot cancel a completed order");
    app.settled().await;
    assert!(app.bus.published::<OrderCancelled>().is_empty());
}

#[tokio::test]
async fn guards_run_in_order_auth_id_owner_state() {
    let app = spawn_app().await;
    let ticket = app.seed_ticket("concert").await;
    let (owner, _) = signin(&app.keys);
    let (other, _) = signin(&app.keys);
    let order: Value = app.order_ticket(&owner, ticket.id).await.json();
    let id = ticketing_core::Id::parse(order["id"].as_str().unwrap()).unwrap();
    app.orders
        .set_status(id, 0, OrderStatus::Complete)
        .await
        .unwrap();
    assert_eq!(app.delete(None, "/api/orders/malformed").await.code(), 401);
    assert_eq!(
        app.delete(Some(&owner), "/api/orders/malformed")
            .await
            .code(),
        404
    );
    assert_eq!(
        app.delete(Some(&other), &format!("/api/orders/{id}"))
            .await
            .code(),
        401
    );
    assert_eq!(
        app.delete(Some(&owner), &format!("/api/orders/{id}"))
            .await
            .code(),
        400
    );
}

/// Story of issue 9: a cancel whose publish failed answered 500, its retry 204 with nothing
/// published, and the tickets service kept the ticket reserved forever.
#[tokio::test]
async fn a_cancel_while_the_broker_refuses_is_a_204_and_announced_once_it_accepts() {
    let app = spawn_app().await;
    let Placed { cookie, order, .. } = app.placed_order().await;
    app.settled().await;
    app.bus.faults().fail_next_publish("order:cancelled");
    let path = format!("/api/orders/{}", order["id"].as_str().unwrap());
    assert_eq!(app.delete(Some(&cookie), &path).await.code(), 204);
    assert_eq!(app.delete(Some(&cookie), &path).await.code(), 204);
    app.settled().await;
    let events = app.bus.published::<OrderCancelled>();
    assert_eq!(events.len(), 1, "announced once, by the relay's retry");
    assert_eq!(events[0].id.to_string(), order["id"].as_str().unwrap());
    assert_eq!(events[0].version, 1);
}
