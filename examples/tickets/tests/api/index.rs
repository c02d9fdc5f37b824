use serde_json::{Value, json};

use crate::helpers::{signin, spawn_app};

#[tokio::test]
async fn the_list_has_every_unreserved_ticket_oldest_first() {
    let app = spawn_app().await;
    let (cookie, _) = signin(&app.keys);
    for title in ["a", "b", "c"] {
        app.create_ticket(&cookie, title, json!(20)).await;
    }
    let reserved = app
        .seed_ticket(ticketing_core::Id::new(), Some(ticketing_core::Id::new()))
        .await;
    let list: Vec<Value> = app.get("/api/tickets").await.json().await.unwrap();
    let titles: Vec<&str> = list.iter().map(|t| t["title"].as_str().unwrap()).collect();
    assert_eq!(titles, ["a", "b", "c"]);
    assert!(list.iter().all(|t| t["id"] != reserved.id.to_string()));
}
