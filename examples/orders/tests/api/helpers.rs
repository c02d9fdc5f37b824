use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use ticketing_bus::memory::InMemoryBus;
use ticketing_common::SessionKeys;
use ticketing_core::outbox::Outbox;
use ticketing_core::ticketing::store::{OrderStore, TicketReplica, TicketReplicaStore};
use ticketing_core::{Clock, Id};
use ticketing_orders::startup::{Orders, OrdersState};
use ticketing_test_app as kit;

pub use kit::{Answer, assert_error, assert_field_error};

pub const WINDOW: Duration = Duration::from_secs(15 * 60);

pub struct TestApp {
    pub http: kit::TestApp,
    pub bus: InMemoryBus,
    pub orders: Arc<dyn OrderStore>,
    pub tickets: Arc<dyn TicketReplicaStore>,
    pub keys: SessionKeys,
    pub outbox: Arc<dyn Outbox>,
    pub clock: Clock,
}

impl Deref for TestApp {
    type Target = kit::TestApp;
    fn deref(&self) -> &kit::TestApp {
        &self.http
    }
}

/// The orders service on a random port over an in-memory bus and stores, its time on tokio's
/// clock.
pub async fn spawn_app() -> TestApp {
    let memory = kit::Memory::new().await;
    let keys = kit::keys();
    let clock = Clock::tokio();
    let state = OrdersState::new(
        &memory.database,
        keys.clone(),
        WINDOW,
        clock.clone(),
        &memory.bus(),
    );
    let (orders, tickets) = (state.orders.clone(), state.tickets.clone());
    TestApp {
        outbox: state.database.outbox(),
        http: kit::spawn::<Orders>(state).await,
        bus: memory.bus,
        orders,
        tickets,
        keys,
        clock,
    }
}

/// A session for a new user: (cookie header value, user id).
pub fn signin(keys: &SessionKeys) -> (String, Id) {
    kit::signed_in(keys)
}

/// What [`TestApp::placed_order`] set up.
pub struct Placed {
    /// The ticket, as the replica holds it.
    pub ticket: TicketReplica,
    /// The buyer's session.
    pub cookie: String,
    /// The buyer.
    pub user: Id,
    /// The order, as `POST /api/orders` answered it.
    pub order: Value,
}

impl TestApp {
    /// A ticket as the replica holds it.
    pub async fn seed_ticket(&self, title: &str) -> TicketReplica {
        let ticket = TicketReplica {
            id: Id::new(),
            title: title.into(),
            price: "20".parse().unwrap(),
            version: 0,
        };
        self.tickets.apply(&ticket).await.unwrap();
        ticket
    }

    /// A ticket in the replica ordered by a new signed-in user: the order as the API answered
    /// it (201).
    pub async fn placed_order(&self) -> Placed {
        let ticket = self.seed_ticket("concert").await;
        let (cookie, user) = signin(&self.keys);
        let response = self.order_ticket(&cookie, ticket.id).await;
        assert_eq!(response.code(), 201, "the order of a free ticket");
        let order = response.json();
        Placed {
            ticket,
            cookie,
            user,
            order,
        }
    }

    pub async fn post_order(&self, cookie: Option<&str>, body: &Value) -> Answer {
        self.http.post("/api/orders", cookie, body).await
    }

    pub async fn order_ticket(&self, cookie: &str, ticket: Id) -> Answer {
        self.post_order(Some(cookie), &json!({"ticketId": ticket.to_string()}))
            .await
    }

    pub async fn get(&self, cookie: Option<&str>, path: &str) -> Answer {
        self.http.get(path, cookie).await
    }

    pub async fn delete(&self, cookie: Option<&str>, path: &str) -> Answer {
        self.http.delete(path, cookie).await
    }

    pub async fn settled(&self) {
        kit::settled_with(&self.bus, &*self.outbox).await;
    }
}
