//! The load generator's consistency check against the all-in-one system: silent when the
//! services agree, and naming each disagreement planted behind their backs.

use std::time::Duration;

use serde_json::json;
use ticketing::{Settings, TicketingApp};
use ticketing_core::Id;
use ticketing_core::ticketing::store::{Ticket, TicketReplica};
use ticketing_test_app::JWT_KEY;
use ticketing_test_app::system::{Endpoints, sign_up};
use ticketing_test_client::verify::{OrderRecord, Record, UserRecord, check};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_check_passes_on_agreeing_services_and_names_each_disagreement() {
    let app = TicketingApp::build(Settings::for_tests(JWT_KEY))
        .await
        .expect("build");
    let base = format!("http://127.0.0.1:{}", app.port());
    let states = app.states().clone();
    let bus = app.bus().memory().cloned().expect("in-memory bus");
    tokio::spawn(app.run_until_stopped());
    let at = Endpoints::single(&base);
    let seller = sign_up(&at, &format!("seller-{}@test.com", Id::new())).await;
    let buyer_email = format!("buyer-{}@test.com", Id::new());
    let buyer = sign_up(&at, &buyer_email).await;
    let held = seller.sell("held", json!(10)).await.expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let free = seller.sell("free", json!(12)).await.expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let order = buyer.order_when_orderable(&held).await.expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut record = Record {
        target: base,
        users: vec![UserRecord {
            email: buyer_email,
            cookie: buyer.cookie.clone(),
        }],
        tickets: vec![held.clone(), free.clone()],
        orders: vec![OrderRecord {
            id: order.clone(),
            buyer: 0,
        }],
    };

    let issues = check(&mut record, Duration::from_secs(20)).await.unwrap();
    assert_eq!(issues, Vec::<String>::new());
    // The check ordered and cancelled the free ticket: let that settle.
    tokio::time::timeout(
        Duration::from_secs(20),
        bus.settled_except(&["expiration-service"]),
    )
    .await
    .unwrap();

    // Behind the services' backs: the tickets service holds the free ticket for an order no
    // one placed, and the orders service's copy of the held ticket has another price.
    let free_id = Id::parse(&free).unwrap();
    let ticket = states.tickets.tickets.get(free_id).await.unwrap();
    states
        .tickets
        .tickets
        .update(&Ticket {
            order_id: Some(Id::new()),
            ..ticket
        })
        .await
        .unwrap();
    let held_id = Id::parse(&held).unwrap();
    let replica = states.orders.tickets.get(&held_id).await.unwrap();
    states
        .orders
        .tickets
        .apply(&TicketReplica {
            version: replica.version + 1,
            price: "99".parse().unwrap(),
            ..replica
        })
        .await
        .unwrap();

    let issues = check(&mut record, Duration::from_secs(1)).await.unwrap();
    assert_eq!(issues.len(), 2, "{issues:#?}");
    assert!(
        issues
            .iter()
            .any(|i| i.contains(&format!("ticket {free} is held by order"))
                && i.contains("which none of the users has")),
        "{issues:#?}"
    );
    assert!(
        issues.iter().any(|i| i.contains(&format!(
            "order {order} shows ticket {held} at version 2 for 99"
        ))),
        "{issues:#?}"
    );
}
