use std::ops::Deref;
use std::sync::Arc;

use serde_json::{Value, json};
use ticketing_bus::memory::InMemoryBus;
use ticketing_common::SessionKeys;
use ticketing_core::Id;
use ticketing_core::outbox::Outbox;
use ticketing_core::ticketing::store::{OrderReplicaStore, Ticket, TicketStore};
use ticketing_test_app as kit;
use ticketing_tickets::startup::{Tickets, TicketsState};

pub use kit::{Answer, assert_error, assert_field_error, error_messages};

pub struct TestApp {
    pub http: kit::TestApp,
    pub bus: InMemoryBus,
    pub tickets: Arc<dyn TicketStore>,
    pub order_replicas: Arc<dyn OrderReplicaStore>,
    pub keys: SessionKeys,
    pub outbox: Arc<dyn Outbox>,
}

impl Deref for TestApp {
    type Target = kit::TestApp;
    fn deref(&self) -> &kit::TestApp {
        &self.http
    }
}

/// The tickets service on a random port over an in-memory bus and stores.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// As [`spawn_app`], with the state changed first (a store wrapped with a fault, say).
pub async fn spawn_app_with(change: impl FnOnce(&mut TicketsState)) -> TestApp {
    let memory = kit::Memory::new().await;
    let keys = kit::keys();
    let mut state = TicketsState::new(&memory.database, keys.clone(), &memory.bus());
    change(&mut state);
    let (tickets, order_replicas) = (state.tickets.clone(), state.order_replicas.clone());
    TestApp {
        outbox: state.database.outbox(),
        http: kit::spawn::<Tickets>(state).await,
        bus: memory.bus,
        tickets,
        order_replicas,
        keys,
    }
}

/// A session for a new user: (cookie header value, user id).
pub fn signin(keys: &SessionKeys) -> (String, Id) {
    kit::signed_in(keys)
}

impl TestApp {
    pub async fn post_ticket(&self, cookie: Option<&str>, body: &Value) -> Answer {
        self.http.post("/api/tickets", cookie, body).await
    }

    pub async fn put_ticket(&self, cookie: Option<&str>, id: &str, body: &Value) -> Answer {
        self.http
            .put(&format!("/api/tickets/{id}"), cookie, body)
            .await
    }

    /// Puts a valid update (`x` at 20) to ticket `id`.
    pub async fn put_valid_update(&self, cookie: Option<&str>, id: impl ToString) -> Answer {
        let body = serde_json::json!({"title": "x", "price": 20});
        self.put_ticket(cookie, &id.to_string(), &body).await
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.http.get(path, None).await
    }

    /// Creates a ticket through the API as the user of `cookie`.
    pub async fn create_ticket(&self, cookie: &str, title: &str, price: Value) -> Value {
        let response = self
            .post_ticket(Some(cookie), &json!({"title": title, "price": price}))
            .await;
        assert_eq!(response.code(), 201);
        response.json()
    }

    /// Stores a ticket of `user_id` directly, bypassing the API, reserved by `order_id`.
    pub async fn seed_ticket(&self, user_id: Id, order_id: Option<Id>) -> Ticket {
        let ticket = Ticket {
            id: Id::new(),
            title: "concert".into(),
            price: "20".parse().unwrap(),
            user_id,
            version: 0,
            order_id: None,
        };
        let ticket = self.tickets.create(ticket).await.unwrap();
        match order_id {
            Some(order) => self
                .tickets
                .update(&Ticket {
                    order_id: Some(order),
                    ..ticket
                })
                .await
                .unwrap(),
            None => ticket,
        }
    }

    /// Waits until the bus has nothing in flight or due, with a limit.
    pub async fn settled(&self) {
        kit::settled_with(&self.bus, &*self.outbox).await;
    }
}
