use std::sync::Arc;

use chrono::Utc;
use serde_json::{Value, json};
use ticketing_bus::memory::InMemoryBus;
use ticketing_core::ticketing::events::{
    OrderCancelled, OrderCancelledTicket, OrderCreated, OrderCreatedTicket, PaymentCreated,
};
use ticketing_core::ticketing::payment::{PaymentStatus, PaymentStore};
use ticketing_core::ticketing::reservation::OrderStatus;
use ticketing_core::{Bus, Event, Id, Publisher};
use ticketing_payments::provider::FakeProvider;
use ticketing_payments::startup::{Payments, PaymentsState};
use ticketing_test_app as kit;
use ticketing_test_app::Answer;

struct App {
    http: kit::TestApp,
    bus: InMemoryBus,
    outbox: Arc<dyn ticketing_core::outbox::Outbox>,
    payments: Arc<dyn PaymentStore>,
    provider: FakeProvider,
    keys: ticketing_common::SessionKeys,
}

/// The payments service's state over `memory`, charging through `provider`.
pub fn state_with(
    memory: &kit::Memory,
    provider: Arc<dyn ticketing_payments::provider::PaymentProvider>,
) -> PaymentsState {
    PaymentsState::new(&memory.database, kit::keys(), &memory.bus(), provider)
}

/// `POST /api/payments` of `order` with the card `token`, signed in as `cookie`.
pub async fn pay_order(http: &kit::TestApp, cookie: &str, order: Id, token: &str) -> Answer {
    let body = json!({"orderId": order.to_string(), "token": token});
    http.post("/api/payments", Some(cookie), &body).await
}

async fn spawn_app() -> App {
    let memory = kit::Memory::new().await;
    let provider = FakeProvider::new();
    let keys = kit::keys();
    let state = state_with(&memory, Arc::new(provider.clone()));
    App {
        outbox: state.database.outbox(),
        payments: state.payments.clone(),
        http: kit::spawn::<Payments>(state).await,
        bus: memory.bus,
        provider,
        keys,
    }
}

/// An order of `buyer` for 19.99 in the payments service's replica, as `order:created` leaves
/// it.
pub async fn seed_order(memory: &kit::Memory, buyer: Id) -> Id {
    use ticketing_core::ticketing::payment::PayableOrder;
    let id = Id::new();
    memory
        .database
        .payable_orders()
        .apply(&PayableOrder {
            id,
            user_id: buyer,
            price: "19.99".parse().unwrap(),
            status: OrderStatus::Created,
            version: 0,
        })
        .await
        .unwrap();
    id
}

impl App {
    async fn publish<E: Event>(&self, event: &E) {
        Publisher::<E>::new(self.bus.as_dyn())
            .publish(event)
            .await
            .unwrap();
    }

    async fn settled(&self) {
        kit::settled_with(&self.bus, &*self.outbox).await;
    }

    /// An order of `buyer` for 19.99, known to the payments service.
    async fn order_of(&self, buyer: Id) -> Id {
        let id = Id::new();
        self.publish(&OrderCreated {
            id,
            version: 0,
            status: OrderStatus::Created,
            user_id: buyer,
            expires_at: Utc::now(),
            ticket: OrderCreatedTicket {
                id: Id::new(),
                price: "19.99".parse().unwrap(),
            },
        })
        .await;
        self.settled().await;
        id
    }

    /// Pays `order` with `tok_visa`: a `201`, and the payment's id.
    async fn paid(&self, cookie: &str, order: Id) -> Id {
        let response = pay_order(&self.http, cookie, order, "tok_visa").await;
        assert_eq!(response.code(), 201);
        let body: Value = response.json();
        Id::parse(body["id"].as_str().unwrap()).unwrap()
    }

    async fn pay(&self, cookie: &str, body: Value) -> Answer {
        self.http.post("/api/payments", Some(cookie), &body).await
    }
}

#[tokio::test]
async fn paying_charges_the_exact_price_once_and_announces_it() {
    let app = spawn_app().await;
    let (cookie, buyer) = kit::signed_in(&app.keys);
    let order = app.order_of(buyer).await;
    let id = app.paid(&cookie, order).await;
    app.settled().await;
    let charges = app.provider.charges();
    assert_eq!(charges.len(), 1);
    assert_eq!(charges[0].request.amount_cents, 1999);
    let payment = app.payments.get(id).await.unwrap();
    assert_eq!(payment.status, PaymentStatus::Succeeded);
    assert_eq!(
        charges[0].request.idempotency_key, payment.idempotency_key,
        "the key stored with the attempt is the one sent"
    );
    let events = app.bus.published::<PaymentCreated>();
    assert_eq!(events.len(), 1);
    assert_eq!(
        (
            events[0].id,
            events[0].order_id,
            events[0].stripe_id.clone()
        ),
        (id, order, charges[0].id.clone())
    );
}

#[tokio::test]
async fn bad_requests_get_the_api_answers() {
    let app = spawn_app().await;
    let (cookie, buyer) = kit::signed_in(&app.keys);
    let order = app.order_of(buyer).await;
    let response = app.http.post("/api/payments", None, &json!({})).await;
    assert_eq!(response.code(), 401);
    let response = app.pay(&cookie, json!({"token": " ", "orderId": ""})).await;
    assert_eq!(response.code(), 400);
    assert_eq!(
        kit::error_messages(&response),
        vec![
            ("Invalid value".into(), Some("token".into())),
            ("Invalid value".into(), Some("orderId".into()))
        ]
    );
    for unknown in [Id::new().to_string(), "nope".to_owned()] {
        let response = app
            .pay(&cookie, json!({"orderId": unknown, "token": "tok_visa"}))
            .await;
        assert_eq!(response.code(), 404, "{unknown}");
    }
    let (other, _) = kit::signed_in(&app.keys);
    let response = pay_order(&app.http, &other, order, "tok_visa").await;
    assert_eq!(response.code(), 401);
    let response = pay_order(&app.http, &cookie, order, "tok_nonsense").await;
    kit::assert_error(&response, 400, "No such token: 'tok_nonsense'");
    assert!(app.provider.charges().is_empty(), "nothing charged");
}

#[tokio::test]
async fn a_cancelled_order_cannot_be_paid_and_a_charge_that_lost_the_race_is_refunded() {
    let app = spawn_app().await;
    let (cookie, buyer) = kit::signed_in(&app.keys);
    let order = app.order_of(buyer).await;
    // Paid just before the cancellation reaches the payments service.
    let id = app.paid(&cookie, order).await;
    app.publish(&OrderCancelled {
        id: order,
        version: 1,
        ticket: OrderCancelledTicket { id: Id::new() },
    })
    .await;
    app.settled().await;
    assert_eq!(
        app.payments.get(id).await.unwrap().status,
        PaymentStatus::Refunded
    );
    assert!(app.provider.charges()[0].refunded, "the money went back");
    let response = pay_order(&app.http, &cookie, order, "tok_visa").await;
    kit::assert_error(&response, 400, "Cannot pay for an cancelled order");
    assert!(app.bus.dead_letters().await.unwrap().is_empty());
}

#[tokio::test]
async fn the_provider_on_is_told_with_its_test_tokens() {
    let app = spawn_app().await;
    let response = app.http.get("/api/payments/provider", None).await;
    assert_eq!(response.code(), 200);
    let body: Value = response.json();
    assert_eq!(
        body,
        json!({"provider": "fake", "testTokens": ["tok_visa", "tok_chargeDeclined"]})
    );
}
