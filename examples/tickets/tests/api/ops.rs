//! The operations endpoints of a service binary: liveness, readiness and the Prometheus text
//! with the HTTP and SDK metrics.

use serde_json::{Value, json};
use ticketing_core::ticketing::events::{OrderCreated, OrderCreatedTicket};
use ticketing_core::ticketing::reservation::OrderStatus;
use ticketing_core::{Id, Publisher};

use crate::helpers::{signin, spawn_app};

#[tokio::test]
async fn alive_and_ready_with_the_database_broker_and_listeners_checked() {
    let app = spawn_app().await;
    let alive = app.http.get("/healthz", None).await;
    assert_eq!(alive.code(), 200);
    assert_eq!(alive.json::<Value>(), json!({"status": "alive"}));
    let ready = app.http.get("/readyz", None).await;
    assert_eq!(ready.code(), 200);
    let body: Value = ready.json();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"]["database:tickets"], "ok");
    assert_eq!(body["checks"]["broker"], "ok");
    // One listener: the three order events on one consumer.
    assert_eq!(body["checks"]["listeners"], "1 running");
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_deliveries_by_subject() {
    let app = spawn_app().await;
    let (cookie, _) = signin(&app.keys);
    let created = app
        .post_ticket(Some(&cookie), &json!({"title": "concert", "price": "10"}))
        .await;
    assert_eq!(created.code(), 201);
    let id: Value = created.json();
    let id = id["id"].as_str().unwrap().to_owned();
    assert_eq!(
        app.http
            .get(&format!("/api/tickets/{id}"), None)
            .await
            .code(),
        200
    );
    // An event the listeners handle: an order for that ticket.
    Publisher::<OrderCreated>::new(app.bus.as_dyn())
        .publish(&OrderCreated {
            id: Id::new(),
            version: 0,
            status: OrderStatus::Created,
            user_id: Id::new(),
            expires_at: chrono::Utc::now(),
            ticket: OrderCreatedTicket {
                id: Id::parse(&id).unwrap(),
                price: "10".parse().unwrap(),
            },
        })
        .await
        .unwrap();
    app.settled().await;

    let response = app.http.get("/metrics", None).await;
    assert_eq!(response.code(), 200);
    assert!(
        response.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = response.text.clone();
    let has = |needle: &str| {
        assert!(
            text.lines().any(|line| line.starts_with(needle)
                || (line.contains(needle) && !line.starts_with('#'))),
            "no {needle} in:\n{text}"
        );
    };
    // The route's pattern, never the id.
    has(r#"route="/api/tickets/{id}""#);
    has(r#"http_requests_total{method="POST",route="/api/tickets",status="201"}"#);
    has("http_request_duration_seconds_bucket");
    has(
        r#"ticketing_deliveries_total{subject="order:created",group="tickets-service",outcome="acked"}"#,
    );
    has("ticketing_handling_seconds_bucket");
    has(r#"ticketing_delivery_lag_seconds_bucket{subject="order:created",group="tickets-service""#);
    has(r#"ticketing_relay_lag_seconds_bucket{subject="ticket:created""#);
    has(r#"ticketing_publish_seconds_bucket{subject="ticket:created""#);
    assert!(!text.contains(&id), "an id became a label");
}
