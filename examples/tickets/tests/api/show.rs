use serde_json::json;

use crate::helpers::{assert_error, error_messages, signin, spawn_app};

#[tokio::test]
async fn an_unknown_ticket_is_a_404() {
    let app = spawn_app().await;
    let response = app
        .get(&format!("/api/tickets/{}", ticketing_core::Id::new()))
        .await;
    assert_error(&response, 404, "Not Found");
}

#[tokio::test]
async fn a_malformed_id_is_a_404() {
    let app = spawn_app().await;
    for id in ["nope", "123", "5f1a2b3c4d5e6f7a8b9c0d1g"] {
        let response = app.get(&format!("/api/tickets/{id}")).await;
        assert_eq!(response.code(), 404, "{id}");
        assert_eq!(error_messages(&response), vec![("Not Found".into(), None)]);
    }
}

#[tokio::test]
async fn a_ticket_is_shown_without_a_session() {
    let app = spawn_app().await;
    let (cookie, _) = signin(&app.keys);
    let created = app.create_ticket(&cookie, "concert", json!(20)).await;
    let response = app
        .get(&format!("/api/tickets/{}", created["id"].as_str().unwrap()))
        .await;
    assert_eq!(response.code(), 200);
    let shown: serde_json::Value = response.json();
    assert_eq!(shown, created);
}
