//! The test kit of the services: spawn a service on a random port over in-memory backends,
//! sign users in, send requests, read error bodies, wait until the bus has settled; and
//! [`system`], the stories the system tests tell with the system's client, wherever its services run.
//!
//! ```no_run
//! # async fn demo() {
//! use ticketing_test_app as kit;
//! # struct MyService;
//! # fn state(_: &kit::Memory) -> () { unreachable!() }
//! let memory = kit::Memory::new().await;            // an in-memory bus and database
//! // let app = kit::spawn::<Tickets>(TicketsState::new(&memory.database, kit::keys(), &memory.bus())).await;
//! // let (cookie, user) = kit::signed_in(&kit::keys());
//! // let response = app.post("/api/tickets", Some(&cookie), &json!({"title": "t", "price": 5})).await;
//! kit::settled(&memory.bus).await;
//! # }
//! ```

pub mod system;

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::COOKIE;
use serde_json::Value;
use ticketing_bus::memory::InMemoryBus;
use ticketing_common::{Application, CommonArgs, Service, SessionKeys};
use ticketing_core::outbox::Outbox;
use ticketing_core::{Bus, Clock, Id};
use ticketing_store::{Database, StoreSettings};
pub use ticketing_test_client::{Answer, Client, Endpoints};
use tokio_util::sync::CancellationToken;

/// The key test sessions are signed with.
pub const JWT_KEY: &str = "test-jwt-key-of-at-least-thirty-two-bytes";

/// Options for a service under test: [`JWT_KEY`], port 0 on loopback, in-memory backends.
pub fn common() -> CommonArgs {
    CommonArgs::for_tests(JWT_KEY)
}

/// The session keys of [`common`], reading the time from `Clock::tokio()` so that session
/// expiry follows a paused test clock.
pub fn keys() -> SessionKeys {
    common()
        .session_keys(false)
        .expect("test keys")
        .with_clock(Clock::tokio())
}

/// In-memory backends for one service: the bus (with its harness) and a database.
#[derive(Debug, Clone)]
pub struct Memory {
    /// The bus, with the harness.
    pub bus: InMemoryBus,
    /// The database.
    pub database: Database,
}

impl Memory {
    /// A new in-memory bus and database.
    pub async fn new() -> Self {
        Memory {
            bus: InMemoryBus::new(),
            database: StoreSettings::Memory
                .open_ticketing("test")
                .await
                .expect("in-memory database"),
        }
    }

    /// The bus as services take it.
    pub fn bus(&self) -> Arc<dyn Bus> {
        self.bus.as_dyn()
    }
}

/// A service running on a random loopback port, and the system's client
/// ([`ticketing_test_client::Client`]) pointed at it.
#[derive(Debug, Clone)]
pub struct TestApp {
    /// `http://127.0.0.1:{port}`.
    pub address: String,
    /// The client.
    pub client: Client,
    /// Stops the service when cancelled.
    pub shutdown: CancellationToken,
}

/// Builds service `S` on `state` with [`common`] options and runs it in the background.
pub async fn spawn<S: Service>(state: S::State) -> TestApp {
    spawn_with::<S>(&common(), state).await
}

/// Builds service `S` on `state` with these options (port and host are the test's) and runs
/// it in the background.
pub async fn spawn_with<S: Service>(options: &CommonArgs, state: S::State) -> TestApp {
    let options = CommonArgs {
        port: 0,
        host: std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        ..options.clone()
    };
    let app = Application::<S>::build_with(&options, state)
        .await
        .expect("the service builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let shutdown = app.shutdown_token();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        client: Client::new(Endpoints::single(&address)),
        address,
        shutdown,
    }
}

impl TestApp {
    /// The URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// The HTTP client underneath, for a request the helpers below do not make (a raw body,
    /// odd headers): send it with [`send`](Self::send).
    pub fn http(&self) -> &reqwest::Client {
        self.client.http()
    }

    /// Sends a request built on [`http`](Self::http) and reads its answer.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        self.client.call("request", request).await
    }

    /// Sends `method path` with the session `cookie` and a JSON `body`, if given.
    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        cookie: Option<&str>,
        body: Option<&Value>,
    ) -> Answer {
        let route = match method.as_str() {
            "GET" => "GET",
            "POST" => "POST",
            "PUT" => "PUT",
            "DELETE" => "DELETE",
            _ => "request",
        };
        let mut request = self.http().request(method, self.url(path));
        if let Some(cookie) = cookie {
            request = request.header(COOKIE, cookie);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        self.client.call(route, request).await
    }

    /// `GET path`.
    pub async fn get(&self, path: &str, cookie: Option<&str>) -> Answer {
        self.request(reqwest::Method::GET, path, cookie, None).await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, cookie: Option<&str>, body: &Value) -> Answer {
        self.request(reqwest::Method::POST, path, cookie, Some(body))
            .await
    }

    /// `PUT path` with a JSON body.
    pub async fn put(&self, path: &str, cookie: Option<&str>, body: &Value) -> Answer {
        self.request(reqwest::Method::PUT, path, cookie, Some(body))
            .await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str, cookie: Option<&str>) -> Answer {
        self.request(reqwest::Method::DELETE, path, cookie, None)
            .await
    }
}

/// A session for a new user signed with `keys`: (cookie header value, user id).
pub fn signed_in(keys: &SessionKeys) -> (String, Id) {
    let id = Id::new();
    let (token, _) = keys.issue(id, "test@test.com").expect("a token");
    (format!("session={}", keys.cookie(&token).value()), id)
}

/// The `(message, field)` pairs of an error body in the API's format.
#[track_caller]
pub fn error_messages(answer: &Answer) -> Vec<(String, Option<String>)> {
    answer.body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("{answer}: no errors array"))
        .iter()
        .map(|e| {
            (
                e["message"].as_str().expect("a message").to_owned(),
                e["field"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

/// Asserts that `answer` is an error with `status` and the one `message` (no field), in the
/// API's format.
#[track_caller]
pub fn assert_error(answer: &Answer, status: u16, message: &str) {
    assert_eq!(answer.code(), status, "{answer}");
    assert_eq!(
        error_messages(answer),
        vec![(message.to_owned(), None)],
        "{answer}"
    );
}

/// Asserts that `answer` is a 400 with the one `message` on `field`, in the API's format.
#[track_caller]
pub fn assert_field_error(answer: &Answer, message: &str, field: &str) {
    assert_eq!(answer.code(), 400, "{answer}");
    assert_eq!(
        error_messages(answer),
        vec![(message.to_owned(), Some(field.to_owned()))],
        "{answer}"
    );
}

/// Asserts that of concurrent orders for one ticket, answered `statuses`, exactly one was
/// created (201) and every other refused with a 400.
#[track_caller]
pub fn assert_one_order_won(statuses: &[u16]) {
    let count = |status: u16| statuses.iter().filter(|s| **s == status).count();
    assert_eq!(count(201), 1, "{statuses:?}");
    assert_eq!(count(400), statuses.len() - 1, "{statuses:?}");
}

/// Waits until the bus has nothing in flight or due (20 s of tokio time at most).
pub async fn settled(bus: &InMemoryBus) {
    tokio::time::timeout(Duration::from_secs(20), bus.settled())
        .await
        .expect("the bus settles");
}

/// Waits until `outbox` is empty and the bus has nothing in flight or due, both at once (a
/// listener may commit new events while it settles; 20 s of tokio time at most).
pub async fn settled_with(bus: &InMemoryBus, outbox: &dyn Outbox) {
    tokio::time::timeout(Duration::from_secs(20), bus.settled_with(&[outbox]))
        .await
        .expect("the outbox empties and the bus settles");
}
