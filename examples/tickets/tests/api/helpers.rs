use std::sync::Arc;
use std::time::Duration;

use reqwest::header::COOKIE;
use serde_json::{Value, json};
use ticketing_bus::memory::InMemoryBus;
use ticketing_common::{CommonArgs, SessionKeys};
use ticketing_core::Id;
use ticketing_core::store::Ticket;
use ticketing_store::memory::{InMemoryOrderReplicaStore, InMemoryTicketStore};
use ticketing_tickets::startup::{Application, TicketsState};

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub bus: InMemoryBus,
    pub tickets: InMemoryTicketStore,
    pub order_replicas: InMemoryOrderReplicaStore,
    pub keys: SessionKeys,
}

/// The tickets service on a random port over an in-memory bus and stores.
pub async fn spawn_app() -> TestApp {
    let common = CommonArgs::for_tests("test-jwt-key");
    let keys = common.session_keys(false).unwrap();
    let bus = InMemoryBus::new();
    let tickets = InMemoryTicketStore::new();
    let order_replicas = InMemoryOrderReplicaStore::new();
    let state = TicketsState::new(
        Arc::new(tickets.clone()),
        Arc::new(order_replicas.clone()),
        keys.clone(),
        &bus.as_dyn(),
    );
    let app = Application::build_with(&common, state, bus.as_dyn())
        .await
        .expect("build");
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        client: reqwest::Client::new(),
        bus,
        tickets,
        order_replicas,
        keys,
    }
}

/// A session for a new user: (cookie header value, user id).
pub fn signin(keys: &SessionKeys) -> (String, Id) {
    let id = Id::new();
    let (token, _) = keys.issue(id, "test@test.com").unwrap();
    (format!("session={}", keys.cookie(&token).value()), id)
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn post_ticket(&self, cookie: Option<&str>, body: &Value) -> reqwest::Response {
        let mut request = self.client.post(self.url("/api/tickets")).json(body);
        if let Some(cookie) = cookie {
            request = request.header(COOKIE, cookie);
        }
        request.send().await.unwrap()
    }

    pub async fn put_ticket(
        &self,
        cookie: Option<&str>,
        id: &str,
        body: &Value,
    ) -> reqwest::Response {
        let mut request = self
            .client
            .put(self.url(&format!("/api/tickets/{id}")))
            .json(body);
        if let Some(cookie) = cookie {
            request = request.header(COOKIE, cookie);
        }
        request.send().await.unwrap()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    /// Creates a ticket through the API as the user of `cookie`.
    pub async fn create_ticket(&self, cookie: &str, title: &str, price: Value) -> Value {
        let response = self
            .post_ticket(Some(cookie), &json!({"title": title, "price": price}))
            .await;
        assert_eq!(response.status(), 201);
        response.json().await.unwrap()
    }

    /// Stores a ticket of `user_id` directly, bypassing the API, reserved by `order_id`.
    pub async fn seed_ticket(&self, user_id: Id, order_id: Option<Id>) -> Ticket {
        use ticketing_core::store::TicketStore;
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
        tokio::time::timeout(Duration::from_secs(20), self.bus.settled())
            .await
            .expect("bus settles");
    }
}

pub async fn error_messages(response: reqwest::Response) -> Vec<(String, Option<String>)> {
    let body: Value = response.json().await.unwrap();
    body["errors"]
        .as_array()
        .expect("errors array")
        .iter()
        .map(|e| {
            (
                e["message"].as_str().unwrap().to_owned(),
                e["field"].as_str().map(str::to_owned),
            )
        })
        .collect()
}
