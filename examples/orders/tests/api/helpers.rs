use std::sync::Arc;
use std::time::Duration;

use reqwest::header::COOKIE;
use serde_json::{Value, json};
use ticketing_bus::memory::InMemoryBus;
use ticketing_common::{CommonArgs, SessionKeys};
use ticketing_core::Id;
use ticketing_core::store::{TicketReplica, TicketReplicaStore};
use ticketing_orders::startup::{Application, OrdersState};
use ticketing_store::memory::{InMemoryOrderStore, InMemoryTicketReplicaStore};

pub const WINDOW: Duration = Duration::from_secs(15 * 60);

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub bus: InMemoryBus,
    pub orders: InMemoryOrderStore,
    pub tickets: InMemoryTicketReplicaStore,
    pub keys: SessionKeys,
}

/// The orders service on a random port over an in-memory bus and stores.
pub async fn spawn_app() -> TestApp {
    let common = CommonArgs::for_tests("test-jwt-key");
    let keys = common.session_keys(false).unwrap();
    let bus = InMemoryBus::new();
    let tickets = InMemoryTicketReplicaStore::new();
    let orders = InMemoryOrderStore::new(&tickets);
    let state = OrdersState::new(
        Arc::new(orders.clone()),
        Arc::new(tickets.clone()),
        keys.clone(),
        WINDOW,
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
        orders,
        tickets,
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

    pub async fn post_order(&self, cookie: Option<&str>, body: &Value) -> reqwest::Response {
        let mut request = self.client.post(self.url("/api/orders")).json(body);
        if let Some(cookie) = cookie {
            request = request.header(COOKIE, cookie);
        }
        request.send().await.unwrap()
    }

    pub async fn order_ticket(&self, cookie: &str, ticket: Id) -> reqwest::Response {
        self.post_order(Some(cookie), &json!({"ticketId": ticket.to_string()}))
            .await
    }

    pub async fn get(&self, cookie: Option<&str>, path: &str) -> reqwest::Response {
        let mut request = self.client.get(self.url(path));
        if let Some(cookie) = cookie {
            request = request.header(COOKIE, cookie);
        }
        request.send().await.unwrap()
    }

    pub async fn delete(&self, cookie: Option<&str>, path: &str) -> reqwest::Response {
        let mut request = self.client.delete(self.url(path));
        if let Some(cookie) = cookie {
            request = request.header(COOKIE, cookie);
        }
        request.send().await.unwrap()
    }

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
