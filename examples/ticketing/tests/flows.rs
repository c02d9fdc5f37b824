//! Cross-service flows through the all-in-one app over one in-memory bus, with the failures
//! real brokers produce injected.

use std::time::Duration;

use serde_json::{Value, json};
use ticketing::{Settings, TicketingApp};
use ticketing_bus::memory::{InMemoryBus, ReleaseOrder};
use ticketing_core::Bus;
use ticketing_core::ticketing::events::TicketUpdated;

use ticketing_test_app::system::{self as support, Endpoints, User, sign_up};

async fn spawn() -> (Endpoints, InMemoryBus) {
    spawn_with(Settings::for_tests(ticketing_test_app::JWT_KEY)).await
}

async fn spawn_with(settings: Settings) -> (Endpoints, InMemoryBus) {
    let app = TicketingApp::build(settings).await.expect("build");
    let bus = app.bus().memory().cloned().expect("in-memory bus");
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    (Endpoints::single(&address), bus)
}

/// Waits (`seconds` at most) until every group but the expiration timers has nothing in flight.
async fn settled(bus: &InMemoryBus, seconds: u64) {
    let settled = bus.settled_except(&["expiration-service"]);
    tokio::time::timeout(Duration::from_secs(seconds), settled)
        .await
        .expect("the system comes to rest");
}

/// [`settled`], and nothing was dead-lettered.
async fn settled_without_dead_letters(bus: &InMemoryBus, seconds: u64) {
    settled(bus, seconds).await;
    assert!(bus.dead_letters().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sell_order_cancel_and_reorder_across_the_three_services() {
    let (at, bus) = spawn().await;
    support::sell_order_cancel_reorder(&at).await;
    settled_without_dead_letters(&bus, 20).await;
}

/// With `LISTENER_ORDER=key`, each record's events reach the tickets, orders and payments
/// services' listeners of several events in publish order: the flows run, and none of the
/// replicas' events waits for an earlier one. (The tickets service may still wait for another
/// order's cancellation before a ticket changes hands: that is another key, which a waiting
/// event no longer holds up.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_listeners_in_key_order_the_flows_run_and_no_replica_event_waits() {
    let mut settings = Settings::for_tests(ticketing_test_app::JWT_KEY);
    settings.common.backends.listener_order = ticketing_common::config::ListenerOrder::Key;
    let (at, bus) = spawn_with(settings).await;
    support::sell_order_cancel_reorder(&at).await;
    support::one_of_32_concurrent_orders_wins(&at).await;
    settled_without_dead_letters(&bus, 20).await;
    let groups = bus.groups();
    let ordered = |service: &str| {
        groups
            .iter()
            .filter(|(subjects, group, _)| group == service && subjects.contains(','))
            .map(|(_, _, stats)| *stats)
            .collect::<Vec<_>>()
    };
    for service in ["tickets-service", "orders-service", "payments-service"] {
        let stats = ordered(service);
        assert_eq!(
            stats.len(),
            1,
            "{service} has one ordered group: {groups:?}"
        );
        assert!(
            stats[0].acked >= 4,
            "{service} handled the events: {stats:?}"
        );
        if service != "tickets-service" {
            assert_eq!(stats[0].nacked, 0, "{service} waited: {stats:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_32_concurrent_orders_for_one_ticket_exactly_one_wins() {
    let (at, _) = spawn().await;
    support::one_of_32_concurrent_orders_wins(&at).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_delivered_out_of_order_and_twice_still_converge() {
    let (at, bus) = spawn().await;
    let seller = sign_up(&at, "seller@test.com").await;
    let buyer = sign_up(&at, "buyer@test.com").await;
    // Reserve and release once, so the ticket has a history (versions 0 to 2).
    let ticket = seller.sell("t0", json!(10)).await.expect(201);
    let id = ticket["id"].as_str().unwrap().to_owned();
    let probe = buyer.order_when_orderable(&id).await.expect(201);
    buyer.cancel(probe["id"].as_str().unwrap()).await;
    seller
        .ticket_until(&id, "released", |t| t["version"] == 2)
        .await;
    settled(&bus, 20).await;

    // Five edits whose events reach the orders service newest first, each twice.
    bus.faults().hold("ticket:updated");
    for n in 1..=5 {
        assert_eq!(
            seller
                .edit(&id, &format!("t{n}"), json!(10 + n))
                .await
                .code(),
            200
        );
    }
    // The five edits' events are in the broker (held) once the relay has published them.
    tokio::time::timeout(Duration::from_secs(10), async {
        while bus.published::<TicketUpdated>().len() < 7 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the relay publishes the five edits");
    for _ in 0..5 {
        bus.faults().duplicate_next_delivery("ticket:updated");
    }
    bus.faults()
        .release("ticket:updated", ReleaseOrder::Reversed);
    settled(&bus, 30).await;

    let order = buyer.order_when_orderable(&id).await.expect(201);
    assert_eq!(order["ticket"]["title"], "t5");
    assert_eq!(order["ticket"]["version"], 7);
    assert_eq!(order["ticket"]["price"], 15);
    assert!(
        bus.dead_letters().await.unwrap().is_empty(),
        "{:?}",
        bus.dead_letters().await.unwrap()
    );
    let stats = bus.group_stats("ticket:updated", "orders-service").unwrap();
    assert!(stats.nacked > 0, "gaps were retried: {stats:?}");
    // Reserve, release, five edits and the final reservation: versions 1 to 8, each once (the
    // last one leaves the tickets service's outbox shortly after the order's 201).
    let versions = || -> Vec<u64> {
        bus.published::<TicketUpdated>()
            .iter()
            .filter(|e| e.id.to_string() == id)
            .map(|e| e.version)
            .collect()
    };
    tokio::time::timeout(Duration::from_secs(10), async {
        while versions().len() < 8 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .ok();
    assert_eq!(versions(), (1..=8).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ingress_serves_the_web_client_and_404s_unknown_routes() {
    let (at, _) = spawn().await;
    let client = reqwest::Client::new();
    let page = client.get(format!("{}/", at.auth)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(
        page.text()
            .await
            .unwrap()
            .contains(r#"<script src="/app.js">"#)
    );
    for (path, content_type) in [("/app.js", "text/javascript"), ("/app.css", "text/css")] {
        let asset = client
            .get(format!("{}{path}", at.auth))
            .send()
            .await
            .unwrap();
        assert_eq!(asset.status(), 200, "{path}");
        assert!(
            asset.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with(content_type),
            "{path}"
        );
        if path == "/app.js" {
            assert!(asset.text().await.unwrap().contains("/api/tickets"));
        }
    }
    for path in ["/api/nothing", "/api/tickets/x/y", "/elsewhere"] {
        let response = client
            .get(format!("{}{path}", at.auth))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{path}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body, json!({"errors": [{"message": "Not Found"}]}));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unpaid_order_expires_and_frees_its_ticket() {
    let settings = Settings {
        expiration_window_seconds: 1,
        ..Settings::for_tests(ticketing_test_app::JWT_KEY)
    };
    let (at, bus) = spawn_with(settings).await;
    let seller = sign_up(&at, "seller@test.com").await;
    let buyer = sign_up(&at, "buyer@test.com").await;
    let ticket = seller.sell("concert", json!(20)).await.expect(201);
    let id = ticket["id"].as_str().unwrap().to_owned();
    let order = buyer.order_when_orderable(&id).await.expect(201);
    seller
        .ticket_until(&id, "reserved", |t| t["orderId"] == order["id"])
        .await;
    // The window closes: expiration:complete, the order is cancelled, the ticket released.
    let released = seller
        .ticket_until(&id, "released", |t| t.get("orderId").is_none())
        .await;
    assert_eq!(released["version"], 2);
    let orders = buyer.orders().await.items();
    assert_eq!(
        (orders[0]["status"].as_str(), orders[0]["version"].as_u64()),
        (Some("cancelled"), Some(1))
    );
    assert_eq!(
        bus.published::<ticketing_core::ticketing::events::ExpirationComplete>()
            .len(),
        1
    );
    let again = sign_up(&at, "second@test.com").await;
    assert_eq!(again.order(&id).await.code(), 201);
}

async fn pay(buyer: &User, order: &str, token: &str) -> (u16, Value) {
    let answer = buyer.pay(order, token).await;
    (answer.code(), answer.body)
}

/// Pays once the payments service knows the order (its replica arrives by event).
async fn pay_when_payable(buyer: &User, order: &str, token: &str) -> (u16, Value) {
    for _ in 0..500 {
        let (status, body) = pay(buyer, order, token).await;
        if status != 404 {
            return (status, body);
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the payments service never learned of order {order}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_card_leaves_the_order_payable_and_a_payment_completes_it_once() {
    let (at, bus) = spawn().await;
    let seller = sign_up(&at, "seller@test.com").await;
    let buyer = sign_up(&at, "buyer@test.com").await;
    let stranger = sign_up(&at, "stranger@test.com").await;
    let ticket = seller.sell("concert", json!(19.99)).await.expect(201);
    let ticket_id = ticket["id"].as_str().unwrap();
    let order = buyer.order_when_orderable(ticket_id).await.expect(201);
    let order_id = order["id"].as_str().unwrap();

    let (status, body) = pay_when_payable(&buyer, order_id, "tok_chargeDeclined").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["errors"][0]["message"], "Your card was declined.");
    let (status, _) = pay(&stranger, order_id, "tok_visa").await;
    assert_eq!(status, 401, "not the buyer");

    // Eight payments at once: exactly one charges.
    let attempts: Vec<_> = (0..8)
        .map(|_| {
            let buyer = buyer.clone();
            let order_id = order_id.to_owned();
            tokio::spawn(async move { pay(&buyer, &order_id, "tok_visa").await })
        })
        .collect();
    let mut created = 0;
    for attempt in attempts {
        let (status, body) = attempt.await.unwrap();
        match status {
            201 => created += 1,
            400 => assert_eq!(body["errors"][0]["message"], "Order has already been paid"),
            other => panic!("{other} {body}"),
        }
    }
    assert_eq!(created, 1);

    // The order becomes complete (version 1) and stays so: no expiry, no cancel.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let orders = buyer.orders().await.items();
        if orders[0]["status"] == "complete" {
            assert_eq!(orders[0]["version"], 1);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{orders:?}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(buyer.cancel(order_id).await.code(), 400);
    let (status, body) = pay(&buyer, order_id, "tok_visa").await;
    assert_eq!(
        (status, &body["errors"][0]["message"]),
        (400, &json!("Order has already been paid"))
    );
    // The ticket stays held by the paid order.
    assert_eq!(
        seller.ticket(ticket_id).await.body["orderId"],
        json!(order_id)
    );
    settled_without_dead_letters(&bus, 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_trace_continues_through_the_outbox_into_the_other_services() {
    let (at, bus) = spawn().await;
    let seller = sign_up(&at, "seller@test.com").await;
    let buyer = sign_up(&at, "buyer@test.com").await;
    // Two tickets sold without a trace, one ordered with the caller's.
    seller.sell("opera", json!(30)).await.expect(201);
    let ticket = seller.sell("concert", json!(20)).await.expect(201);
    let third = ticket["id"].as_str().unwrap().to_owned();
    let trace = "0af7651916cd43dd8448eb211c80319c";
    let traced = loop {
        let response = buyer
            .client
            .http()
            .post(format!("{}/api/orders", at.orders))
            .header(reqwest::header::COOKIE, &buyer.cookie)
            .header("traceparent", format!("00-{trace}-b7ad6b7169203331-01"))
            .json(&json!({"ticketId": third}))
            .send()
            .await
            .unwrap();
        if response.status() == 201 {
            break response.json::<Value>().await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let order_id = traced["id"].as_str().unwrap().to_owned();
    let trace_of = |message: &ticketing_core::bus::Message| {
        message
            .headers
            .get("traceparent")
            .and_then(|h| ticketing_core::trace::TraceContext::parse(h))
            .map(|c| c.trace_id())
    };
    // order:created, from the orders service's outbox, carries the request's trace ...
    // The first message of `subject` about the order, once published.
    let about_the_order = |subject: &'static str| {
        let (bus, order_id) = (&bus, &order_id);
        tokio::time::timeout(Duration::from_secs(10), async move {
            loop {
                if let Some(m) = bus
                    .messages(subject)
                    .into_iter()
                    .find(|m| String::from_utf8_lossy(&m.payload).contains(order_id.as_str()))
                {
                    return m;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let created = about_the_order("order:created")
        .await
        .expect("order:created published");
    assert_eq!(trace_of(&created).as_deref(), Some(trace));
    // ... and the tickets service, reserving the ticket in its listener, publishes
    // ticket:updated in the same trace.
    let reserved = about_the_order("ticket:updated")
        .await
        .expect("ticket:updated published");
    assert_eq!(trace_of(&reserved).as_deref(), Some(trace));
    // Requests without a trace start their own.
    let untraced: Vec<_> = bus
        .messages("ticket:created")
        .iter()
        .filter_map(trace_of)
        .collect();
    assert_eq!(untraced.len(), 2);
    assert!(untraced.iter().all(|t| t != trace));
    assert_ne!(untraced[0], untraced[1]);
}
