use serde_json::json;
use ticketing_common::error::CONFLICT_MESSAGE;
use ticketing_core::ticketing::events::TicketUpdated;
use ticketing_core::{Id, StoreError};
use ticketing_store::Database;
use ticketing_store::memory::StoreWrite;

use crate::helpers::{assert_error, error_messages, signin, spawn_app, spawn_app_with};

#[tokio::test]
async fn an_edit_that_keeps_losing_its_version_check_is_a_409_and_publishes_nothing() {
    // Every update loses its version check, as if another edit always won the race.
    let mut faults = None;
    let app = spawn_app_with(|state| {
        let Database::Memory(database) = &state.database else {
            unreachable!("the test app's database is in memory")
        };
        let outraced = database.faults();
        outraced.fail(StoreWrite::TicketUpdate, u32::MAX, || {
            StoreError::conflict("ticket", Id::new(), 0)
        });
        faults = Some(outraced);
    })
    .await;
    let (cookie, user) = signin(&app.keys);
    let ticket = app.seed_ticket(user, None).await;
    let response = app
        .put_ticket(
            Some(&cookie),
            &ticket.id.to_string(),
            &json!({"title": "new", "price": 30}),
        )
        .await;
    assert_eq!(response.code(), 409);
    assert_eq!(
        error_messages(&response),
        vec![(CONFLICT_MESSAGE.to_owned(), None)]
    );
    let updates = faults.expect("armed").calls(StoreWrite::TicketUpdate);
    assert_eq!(updates, 5, "read again and retried");
    app.settled().await;
    assert!(app.bus.published::<TicketUpdated>().is_empty());
}

#[tokio::test]
async fn updating_an_unknown_ticket_is_a_404() {
    let app = spawn_app().await;
    let (cookie, _) = signin(&app.keys);
    let response = app
        .put_valid_update(Some(&cookie), ticketing_core::Id::new())
        .await;
    assert_eq!(response.code(), 404);
}

#[tokio::test]
async fn updating_requires_a_session() {
    let app = spawn_app().await;
    let response = app.put_valid_update(None, ticketing_core::Id::new()).await;
    assert_eq!(response.code(), 401);
}

#[tokio::test]
async fn only_the_owner_may_update() {
    let app = spawn_app().await;
    let (owner, _) = signin(&app.keys);
    let (other, _) = signin(&app.keys);
    let ticket = app.create_ticket(&owner, "concert", json!(20)).await;
    let id = ticket["id"].as_str().unwrap();
    let response = app
        .put_ticket(Some(&other), id, &json!({"title": "mine now", "price": 1}))
        .await;
    assert_error(&response, 401, "Not authorized");
    let unchanged: serde_json::Value = app.get(&format!("/api/tickets/{id}")).await.json();
    assert_eq!(unchanged, ticket);
}

#[tokio::test]
async fn an_invalid_title_or_price_is_a_400() {
    let app = spawn_app().await;
    let (cookie, _) = signin(&app.keys);
    let ticket = app.create_ticket(&cookie, "concert", json!(20)).await;
    let id = ticket["id"].as_str().unwrap();
    let response = app
        .put_ticket(Some(&cookie), id, &json!({"title": "", "price": 20}))
        .await;
    assert_eq!(response.code(), 400);
    let response = app
        .put_ticket(Some(&cookie), id, &json!({"title": "x", "price": -10}))
        .await;
    assert_eq!(response.code(), 400);
}

#[tokio::test]
async fn a_valid_update_bumps_the_version_and_publishes_ticket_updated() {
    let app = spawn_app().await;
    let (cookie, _) = signin(&app.keys);
    let ticket = app.create_ticket(&cookie, "concert", json!(20)).await;
    let id = ticket["id"].as_str().unwrap();
    let response = app
        .put_ticket(
            Some(&cookie),
            id,
            &json!({"title": "new title", "price": 100.5}),
        )
        .await;
    assert_eq!(response.code(), 200);
    let updated: serde_json::Value = response.json();
    assert_eq!(
        (
            updated["title"].as_str(),
            updated["price"].clone(),
            updated["version"].as_u64()
        ),
        (Some("new title"), json!(100.5), Some(1))
    );
    let shown: serde_json::Value = app.get(&format!("/api/tickets/{id}")).await.json();
    assert_eq!(shown, updated);
    app.settled().await;
    let events = app.bus.published::<TicketUpdated>();
    assert_eq!(events.len(), 1);
    assert_eq!(
        (
            events[0].version,
            events[0].title.as_str(),
            events[0].price.cents(),
            events[0].order_id
        ),
        (1, "new title", 10050, None)
    );
}

#[tokio::test]
async fn a_reserved_ticket_cannot_be_edited() {
    let app = spawn_app().await;
    let (cookie, user) = signin(&app.keys);
    let reserved = app.seed_ticket(user, Some(ticketing_core::Id::new())).await;
    let response = app.put_valid_update(Some(&cookie), reserved.id).await;
    assert_error(&response, 400, "Cannot edit a reserved ticket");
    app.settled().await;
    assert!(app.bus.published::<TicketUpdated>().is_empty());
}

#[tokio::test]
async fn guards_run_in_order_auth_body_id_owner_state() {
    let app = spawn_app().await;
    let (cookie, _) = signin(&app.keys);
    let (stranger, _) = signin(&app.keys);
    let reserved = app
        .seed_ticket(ticketing_core::Id::new(), Some(ticketing_core::Id::new()))
        .await;
    let bad_body = json!({"title": ""});
    // Not signed in wins over everything.
    assert_eq!(
        app.put_ticket(None, "malformed", &bad_body).await.code(),
        401
    );
    // Then the body, even with a malformed id.
    assert_eq!(
        app.put_ticket(Some(&cookie), "malformed", &bad_body)
            .await
            .code(),
        400
    );
    // Then the id.
    assert_eq!(
        app.put_ticket(
            Some(&cookie),
            "malformed",
            &json!({"title": "x", "price": 1})
        )
        .await
        .code(),
        404
    );
    // Then the owner, even on a reserved ticket.
    let response = app
        .put_ticket(
            Some(&stranger),
            &reserved.id.to_string(),
            &json!({"title": "x", "price": 1}),
        )
        .await;
    assert_eq!(response.code(), 401);
}
