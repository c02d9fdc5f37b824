//! The stories the system tests tell with the system's client
//! ([`ticketing_test_client`]), wherever its services run (one address for the all-in-one
//! app, one per service otherwise).

use std::time::Duration;

use serde_json::json;
pub use ticketing_test_client::{Client, Endpoints, User};

/// Signs a new user up at `at`; panics when the system refuses.
pub async fn sign_up(at: &Endpoints, email: &str) -> User {
    Client::new(at.clone())
        .sign_up(email)
        .await
        .unwrap_or_else(|refused| panic!("sign-up of {email}: {refused}"))
}

/// The whole story: sell, replicate, order, reserve, cancel, release, order again.
pub async fn sell_order_cancel_reorder(at: &Endpoints) {
    let seller = sign_up(
        at,
        &format!("seller-{}@test.com", ticketing_core::Id::new()),
    )
    .await;
    let buyer = sign_up(at, &format!("buyer-{}@test.com", ticketing_core::Id::new())).await;
    let ticket = seller.sell("concert", json!(19.99)).await.expect(201);
    let id = ticket["id"].as_str().unwrap();

    let order = buyer.order_when_orderable(id).await.expect(201);
    assert_eq!(order["ticket"]["price"], json!(19.99));
    let reserved = seller
        .ticket_until(id, "reserved", |t| t["orderId"] == order["id"])
        .await;
    assert_eq!(reserved["version"], 1);
    assert_eq!(
        seller.edit(id, "new", json!(5)).await.code(),
        400,
        "a reserved ticket cannot be edited"
    );
    assert_eq!(buyer.order(id).await.code(), 400, "already reserved");

    assert_eq!(
        buyer.cancel(order["id"].as_str().unwrap()).await.code(),
        204
    );
    let released = seller
        .ticket_until(id, "released", |t| t.get("orderId").is_none())
        .await;
    assert_eq!(released["version"], 2);

    let edited = seller.edit(id, "concert, front row", json!(25)).await;
    assert_eq!(edited.code(), 200);
    // The orders service learns of the edit by event; an order placed before that sees the
    // old title, so it is cancelled and placed again.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let again = loop {
        let again = buyer.order_when_orderable(id).await.expect(201);
        if again["ticket"]["title"] == "concert, front row" {
            break again;
        }
        assert_eq!(
            buyer.cancel(again["id"].as_str().unwrap()).await.code(),
            204
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "the edit never replicated"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        (
            again["ticket"]["title"].as_str(),
            again["ticket"]["price"].clone()
        ),
        (Some("concert, front row"), json!(25))
    );
    let orders = buyer.orders().await.items();
    assert!(orders.len() >= 2);
    assert_eq!(orders[0]["status"], "cancelled");
    assert_eq!(orders.last().unwrap()["id"], again["id"]);
}

/// 32 buyers order one ticket at once: exactly one 201, the others 400.
pub async fn one_of_32_concurrent_orders_wins(at: &Endpoints) {
    let seller = sign_up(
        at,
        &format!("seller-{}@test.com", ticketing_core::Id::new()),
    )
    .await;
    let ticket = seller.sell("hot", json!(100)).await.expect(201);
    let id = ticket["id"].as_str().unwrap().to_owned();
    let mut buyers = Vec::new();
    for i in 0..32 {
        buyers.push(
            sign_up(
                at,
                &format!("buyer{i}-{}@test.com", ticketing_core::Id::new()),
            )
            .await,
        );
    }
    // Wait until the ticket is orderable without ordering it: an order for a ghost id 404s,
    // so probe with a throwaway user's cancelled order instead.
    let probe = sign_up(at, &format!("probe-{}@test.com", ticketing_core::Id::new())).await;
    let first = probe.order_when_orderable(&id).await.expect(201);
    assert_eq!(
        probe.cancel(first["id"].as_str().unwrap()).await.code(),
        204
    );
    let responses = futures::future::join_all(buyers.iter().map(|b| b.order(&id))).await;
    let statuses: Vec<u16> = responses.iter().map(|r| r.code()).collect();
    crate::assert_one_order_won(&statuses);
}
