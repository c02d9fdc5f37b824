use serde_json::Value;

use crate::helpers::{signin, spawn_app};

#[tokio::test]
async fn the_list_has_the_users_orders_oldest_first_with_their_tickets() {
    let app = spawn_app().await;
    let (one, _) = signin(&app.keys);
    let (two, _) = signin(&app.keys);
    let t1 = app.seed_ticket("first").await;
    let t2 = app.seed_ticket("second").await;
    let t3 = app.seed_ticket("third").await;
    app.order_ticket(&one, t1.id).await;
    let a: Value = app.order_ticket(&two, t2.id).await.json();
    let b: Value = app.order_ticket(&two, t3.id).await.json();
    let response = app.get(Some(&two), "/api/orders").await;
    assert_eq!(response.code(), 200);
    let list: Vec<Value> = response.json();
    assert_eq!(list, vec![a, b]);
    assert_eq!(list[0]["ticket"]["title"], "second");
}

#[tokio::test]
async fn listing_requires_a_session() {
    let app = spawn_app().await;
    assert_eq!(app.get(None, "/api/orders").await.code(), 401);
}
