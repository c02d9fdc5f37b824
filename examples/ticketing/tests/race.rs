//! A payment that races its order's expiry, on the paused clock: the whole system in one
//! process (requests go straight to the ingress router, no sockets, so tokio's clock can jump),
//! the buyer paying at moments around the expiry. Each run ends either as a complete order with
//! its one charge, or as a cancelled order with nothing charged or the charge refunded — never
//! as a cancelled order with money taken.

#![allow(clippy::print_stdout)]

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use ticketing::{Settings, TicketingApp};
use ticketing_common::service::Shared;
use ticketing_core::ticketing::payment::PaymentStatus;
use ticketing_core::{Clock, Id};
use tower::ServiceExt;

async fn call(
    router: &Router,
    method: &str,
    path: &str,
    cookie: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("cookie", cookie);
    let body = match body {
        Some(body) => {
            request = request.header("content-type", "application/json");
            Body::from(body.to_string())
        }
        None => Body::empty(),
    };
    let response = router
        .clone()
        .oneshot(request.body(body).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// How one race ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Ending {
    /// Complete, charged once.
    Paid,
    /// Cancelled; the payment was refused, nothing charged.
    Refused,
    /// Cancelled; the charge made was refunded.
    Refunded,
}

/// Orders a ticket, pays `offset` after the order's expiry (before it when negative) and waits
/// until the system is at rest.
async fn race(offset: Duration, before: bool) -> Ending {
    let mut settings = Settings::for_tests(ticketing_test_app::JWT_KEY);
    settings.expiration_window_seconds = 60;
    let bus = settings.common.backends.connect_bus().await.unwrap();
    let clock = Clock::tokio();
    let shared = Shared {
        bus: Some(bus),
        clock: clock.clone(),
        secure_cookies: false,
    };
    let app = TicketingApp::build_with(&settings, shared).await.unwrap();
    let router = ticketing::router(app.states());
    let keys = ticketing_test_app::keys();
    let (seller, _) = ticketing_test_app::signed_in(&keys);
    let (buyer, _) = ticketing_test_app::signed_in(&keys);

    let (status, ticket) = call(
        &router,
        "POST",
        "/api/tickets",
        &seller,
        Some(json!({"title": "concert", "price": "20"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let order = loop {
        let (status, order) = call(
            &router,
            "POST",
            "/api/orders",
            &buyer,
            Some(json!({"ticketId": ticket["id"]})),
        )
        .await;
        if status == StatusCode::CREATED {
            break order;
        }
        assert_eq!(status, StatusCode::NOT_FOUND, "{order}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let order_id = Id::parse(order["id"].as_str().unwrap()).unwrap();
    let expires_at: chrono::DateTime<chrono::Utc> =
        order["expiresAt"].as_str().unwrap().parse().unwrap();
    let until_expiry = (expires_at - clock.now()).to_std().unwrap();
    tokio::time::sleep(if before {
        until_expiry - offset
    } else {
        until_expiry + offset
    })
    .await;

    let payment = loop {
        let (status, body) = call(
            &router,
            "POST",
            "/api/payments",
            &buyer,
            Some(json!({"orderId": order_id.to_string(), "token": "tok_visa"})),
        )
        .await;
        // The payments replica may not know the order yet.
        if status != StatusCode::NOT_FOUND {
            break (status, body);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };

    // At rest: the order is complete or cancelled and no attempt is pending or (for a
    // cancelled order) left charged — or the deadline says it never settles.
    let payments = app.states().payments.payments.clone();
    let ending = tokio::time::timeout(Duration::from_secs(600), async {
        loop {
            let (_, order) = call(
                &router,
                "GET",
                &format!("/api/orders/{order_id}"),
                &buyer,
                None,
            )
            .await;
            let attempts = payments.for_order(order_id).await.unwrap();
            let charged = attempts
                .iter()
                .filter(|p| p.status == PaymentStatus::Succeeded)
                .count();
            let refunded = attempts
                .iter()
                .filter(|p| p.status == PaymentStatus::Refunded)
                .count();
            let pending = attempts.iter().any(|p| p.status == PaymentStatus::Pending);
            match order["status"].as_str().unwrap() {
                "complete" if !pending => {
                    assert_eq!((charged, refunded), (1, 0), "{attempts:?}");
                    assert_eq!(payment.0, StatusCode::CREATED);
                    return Ending::Paid;
                }
                "cancelled" if !pending && charged == 0 => {
                    return if refunded == 1 {
                        Ending::Refunded
                    } else {
                        assert_eq!(refunded, 0, "{attempts:?}");
                        assert_eq!(payment.0, StatusCode::BAD_REQUEST, "{payment:?}");
                        Ending::Refused
                    };
                }
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("order {order_id} never came to rest (payment {payment:?})"));
    app.shutdown_token().cancel();
    ending
}

#[tokio::test(start_paused = true)]
async fn a_payment_racing_the_expiry_ends_complete_or_refunded_never_cancelled_and_charged() {
    let mut endings = Vec::new();
    for (millis, before) in [
        (5_000, true),
        (100, true),
        (1, true),
        (0, false),
        (1, false),
        (5, false),
        (100, false),
        (5_000, false),
    ] {
        let ending = race(Duration::from_millis(millis), before).await;
        endings.push(((if before { "-" } else { "+" }), millis, ending));
    }
    println!("{endings:?}");
    // Well before the expiry the order is paid; well after, the payment is refused.
    assert_eq!(endings.first().unwrap().2, Ending::Paid, "{endings:?}");
    assert_eq!(endings.last().unwrap().2, Ending::Refused, "{endings:?}");
    // At the very moment of the expiry the charge goes through and the order is cancelled
    // anyway: the hard case, reached and refunded (the clock is paused, so this is
    // deterministic).
    assert!(
        endings.iter().any(|e| e.2 == Ending::Refunded),
        "{endings:?}"
    );
}
