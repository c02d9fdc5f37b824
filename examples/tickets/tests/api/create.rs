use serde_json::{Value, json};
use ticketing_core::ticketing::events::TicketCreated;

use crate::helpers::{assert_error, assert_field_error, error_messages, signin, spawn_app};

#[tokio::test]
async fn creating_a_ticket_requires_a_session() {
    let app = spawn_app().await;
    let response = app
        .post_ticket(None, &json!({"title": "concert", "price": 20}))
        .await;
    assert_error(&response, 401, "Not authorized");
}

#[tokio::test]
async fn a_signed_in_user_gets_past_the_auth_guard() {
    let app = spawn_app().await;
    let (cookie, _) = signin(&app.keys);
    let response = app.post_ticket(Some(&cookie), &json!({})).await;
    assert_ne!(response.code(), 401);
    assert_ne!(response.code(), 404);
}

#[tokio::test]
async fn an_invalid_title_is_a_400_on_the_title_field() {
    let app = spawn_app().await;
    let (cookie, _) = signin(&app.keys);
    for body in [
        json!({"title": "", "price": 10}),
        json!({"price": 10}),
        json!({"title": "   ", "price": 10}),
        json!({"title": 5, "price": 10}),
    ] {
        let response = app.post_ticket(Some(&cookie), &body).await;
        assert_field_error(&response, "Title is required", "title");
    }
}

#[tokio::test]
async fn an_invalid_price_is_a_400_on_the_price_field() {
    let app = spawn_app().await;
    let (cookie, _) = signin(&app.keys);
    for price in [json!(-10), json!(0), json!("abc"), json!(null), json!(true)] {
        let response = app
            .post_ticket(Some(&cookie), &json!({"title": "concert", "price": price}))
            .await;
        assert_field_error(&response, "Price must be greater than 0", "price");
    }
    let response = app
        .post_ticket(Some(&cookie), &json!({"title": "concert"}))
        .await;
    assert_field_error(&response, "Price must be greater than 0", "price");
    let response = app
        .post_ticket(Some(&cookie), &json!({"title": "concert", "price": 10.123}))
        .await;
    assert_eq!(response.code(), 400);
    let response = app
        .post_ticket(
            Some(&cookie),
            &json!({"title": "concert", "price": 1_000_001}),
        )
        .await;
    assert_eq!(response.code(), 400);
}

#[tokio::test]
async fn both_fields_are_reported_at_once() {
    let app = spawn_app().await;
    let (cookie, _) = signin(&app.keys);
    let response = app
        .post_ticket(Some(&cookie), &json!({"title": "", "price": -1}))
        .await;
    let fields: Vec<Option<String>> = error_messages(&response)
        .into_iter()
        .map(|(_, f)| f)
        .collect();
    assert_eq!(fields, vec![Some("title".into()), Some("price".into())]);
}

#[tokio::test]
async fn a_valid_ticket_is_created_at_version_0_with_an_exact_price() {
    let app = spawn_app().await;
    let (cookie, user) = signin(&app.keys);
    assert_eq!(
        app.get("/api/tickets")
            .await
            .json::<Vec<serde_json::Value>>()
            .len(),
        0
    );
    let ticket = app
        .create_ticket(&cookie, "  concert  ", json!(19.99))
        .await;
    assert_eq!(ticket["title"], "concert");
    assert_eq!(ticket["price"], json!(19.99));
    assert_eq!(ticket["version"], 0);
    assert_eq!(ticket["userId"], user.to_string());
    assert!(ticket.get("orderId").is_none());
    let string_price = app.create_ticket(&cookie, "opera", json!("20")).await;
    assert_eq!(string_price["price"], json!(20));
    assert_eq!(
        app.get("/api/tickets")
            .await
            .json::<Vec<serde_json::Value>>()
            .len(),
        2
    );
}

#[tokio::test]
async fn creating_a_ticket_publishes_ticket_created() {
    let app = spawn_app().await;
    let (cookie, user) = signin(&app.keys);
    let ticket = app.create_ticket(&cookie, "concert", json!(20)).await;
    app.settled().await;
    let published = app.bus.published::<TicketCreated>();
    assert_eq!(published.len(), 1);
    let event = &published[0];
    assert_eq!(event.id.to_string(), ticket["id"].as_str().unwrap());
    assert_eq!(
        (
            event.version,
            event.title.as_str(),
            event.price.cents(),
            event.user_id
        ),
        (0, "concert", 2000, user)
    );
}

#[tokio::test]
async fn a_ticket_stored_while_the_broker_refuses_is_announced_once_it_accepts() {
    let app = spawn_app().await;
    let (cookie, _) = signin(&app.keys);
    // The broker refuses the first publish: the request does not care, the relay retries.
    app.bus.faults().fail_next_publish("ticket:created");
    let response = app
        .post_ticket(Some(&cookie), &json!({"title": "concert", "price": 20}))
        .await;
    assert_eq!(response.code(), 201);
    let body: Value = response.json();
    app.settled().await;
    let events = app.bus.published::<TicketCreated>();
    assert_eq!(events.len(), 1, "announced once, after the retry");
    assert_eq!(events[0].id.to_string(), body["id"].as_str().unwrap());
}
