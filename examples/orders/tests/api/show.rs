use serde_json::Value;

use crate::helpers::{Placed, assert_error, signin, spawn_app};

#[tokio::test]
async fn the_owner_sees_the_order() {
    let app = spawn_app().await;
    let Placed { cookie, order, .. } = app.placed_order().await;
    let response = app
        .get(
            Some(&cookie),
            &format!("/api/orders/{}", order["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(response.code(), 200);
    assert_eq!(response.json::<Value>(), order);
}

#[tokio::test]
async fn someone_elses_order_is_a_401() {
    let app = spawn_app().await;
    let ticket = app.seed_ticket("concert").await;
    let (owner, _) = signin(&app.keys);
    let (other, _) = signin(&app.keys);
    let order: Value = app.order_ticket(&owner, ticket.id).await.json();
    let response = app
        .get(
            Some(&other),
            &format!("/api/orders/{}", order["id"].as_str().unwrap()),
        )
        .await;
    assert_error(&response, 401, "Not authorized");
}

#[tokio::test]
async fn unknown_and_malformed_ids_are_404_and_auth_comes_first() {
    let app = spawn_app().await;
    let (cookie, _) = signin(&app.keys);
    assert_eq!(
        app.get(
            Some(&cookie),
            &format!("/api/orders/{}", ticketing_core::Id::new())
        )
        .await
        .code(),
        404
    );
    assert_eq!(
        app.get(Some(&cookie), "/api/orders/not-an-id").await.code(),
        404
    );
    assert_eq!(app.get(None, "/api/orders/not-an-id").await.code(), 401);
}
