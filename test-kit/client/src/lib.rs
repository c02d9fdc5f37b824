//! One HTTP client of the whole ticketing system, for everything that drives it from outside:
//! the service and system tests, the load generator, its `--verify` check and the crash tests'
//! users.
//!
//! A [`Client`] knows where each service answers ([`Endpoints`]: one address for the
//! all-in-one app or behind the ingress, one per service otherwise) and may carry an
//! observer that sees every call (its route, status and time: the load generator's
//! histograms, the crash tests' tally). A [`User`] is a client with a session; each of its
//! methods is one API route and returns an [`Answer`], never an error: a request that got no
//! answer is an `Answer` without a status, so a driver under faults counts it and a test
//! asserts on it the same way.
//!
//! ```no_run
//! # async fn demo() {
//! use serde_json::json;
//! use ticketing_test_client::{Client, Endpoints};
//!
//! let client = Client::new(Endpoints::single("http://127.0.0.1:3000"));
//! let seller = client.sign_up("seller@example.com").await.expect("sign-up");
//! let ticket = seller.sell("concert", json!(20)).await.expect(201);
//! let buyer = client.sign_up("buyer@example.com").await.expect("sign-up");
//! let order = buyer.order_when_orderable(ticket["id"].as_str().unwrap()).await.expect(201);
//! assert_eq!(buyer.pay(order["id"].as_str().unwrap(), "tok_visa").await.code(), 201);
//! # }
//! ```

pub mod verify;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{COOKIE, HeaderMap, SET_COOKIE};
use reqwest::{RequestBuilder, StatusCode};
use serde_json::{Value, json};

/// The password of every user this client signs up.
pub const PASSWORD: &str = "password123";

/// How long [`User::order_when_orderable`] and [`User::ticket_until`] wait for an event to
/// propagate.
pub const PROPAGATION_LIMIT: Duration = Duration::from_secs(20);

/// Where each service answers (the same address for the all-in-one app or the ingress).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// `/api/users/*`.
    pub auth: String,
    /// `/api/tickets/*`.
    pub tickets: String,
    /// `/api/orders/*`.
    pub orders: String,
    /// `/api/payments/*`.
    pub payments: String,
}

impl Endpoints {
    /// Every route at one address (`http://host:port`, no trailing slash needed).
    pub fn single(address: &str) -> Self {
        let address = address.trim_end_matches('/').to_owned();
        Endpoints {
            auth: address.clone(),
            tickets: address.clone(),
            orders: address.clone(),
            payments: address,
        }
    }
}

/// One call as an observer sees it.
#[derive(Debug, Clone, Copy)]
pub struct Call {
    /// The route, as `METHOD /path/:param`.
    pub route: &'static str,
    /// Its status; `None` when no answer came (refused, reset, timed out).
    pub status: Option<StatusCode>,
    /// From sending the request to having read the whole answer.
    pub elapsed: Duration,
}

type Observer = Arc<dyn Fn(&Call) + Send + Sync>;

/// What a route answered.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The route, as `METHOD /path/:param`.
    pub route: &'static str,
    /// The status; `None` when no answer came.
    pub status: Option<StatusCode>,
    /// The body as JSON (`Null` when empty or not JSON).
    pub body: Value,
    /// Why no answer came, or the body's text when it was not JSON (empty otherwise).
    pub text: String,
    /// The answer's headers (none when no answer came).
    pub headers: HeaderMap,
    session: Option<String>,
}

impl Answer {
    /// The status as a number; 0 when no answer came.
    pub fn code(&self) -> u16 {
        self.status.map_or(0, |s| s.as_u16())
    }

    /// Whether the answer came with `status`.
    pub fn is(&self, status: u16) -> bool {
        self.code() == status
    }

    /// The body's `id`.
    pub fn id(&self) -> Option<&str> {
        self.body["id"].as_str()
    }

    /// The `session=…` cookie the answer set.
    pub fn session(&self) -> Option<&str> {
        self.session.as_deref()
    }

    /// The body as a `T`; panics, naming the answer, when it is not one.
    #[track_caller]
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> T {
        match T::deserialize(&self.body) {
            Ok(value) => value,
            Err(error) => panic!("{self}: not the body expected ({error})"),
        }
    }

    /// The header `name`, when the answer has it as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body; panics, naming the route, the status and the body, unless the answer came
    /// with `status`.
    #[track_caller]
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(self.code(), status, "{self}");
        self.body
    }

    /// The body's items; panics unless the answer is a 200 with an array.
    #[track_caller]
    pub fn items(self) -> Vec<Value> {
        let description = self.to_string();
        match self.expect(200) {
            Value::Array(items) => items,
            _ => panic!("not a list: {description}"),
        }
    }
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status {
            Some(status) if self.body.is_null() => {
                write!(f, "{} answered {status} {}", self.route, self.text)
            }
            Some(status) => write!(f, "{} answered {status} {}", self.route, self.body),
            None => write!(f, "{}: no answer ({})", self.route, self.text),
        }
    }
}

/// A client of the whole system.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    at: Arc<Endpoints>,
    observer: Option<Observer>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("at", &self.at)
            .field("observed", &self.observer.is_some())
            .finish()
    }
}

impl Client {
    /// A client of the system at `at`.
    pub fn new(at: Endpoints) -> Self {
        Client::with_http(reqwest::Client::new(), at)
    }

    /// A client sending through `http` (its pool and timeouts).
    pub fn with_http(http: reqwest::Client, at: Endpoints) -> Self {
        Client {
            http,
            at: Arc::new(at),
            observer: None,
        }
    }

    /// The same client, showing every call to `observer` once its answer is read.
    pub fn observed(mut self, observer: impl Fn(&Call) + Send + Sync + 'static) -> Self {
        self.observer = Some(Arc::new(observer));
        self
    }

    /// Where the services answer.
    pub fn endpoints(&self) -> &Endpoints {
        &self.at
    }

    /// The underlying HTTP client (for requests off the API, such as a bare handler).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Sends `request` as `route` and reads its answer.
    pub async fn call(&self, route: &'static str, request: RequestBuilder) -> Answer {
        let started = Instant::now();
        let answer = match request.send().await {
            Ok(mut response) => {
                let status = response.status();
                let session = session_cookie(&response);
                // Taken, not copied: the body is read without them.
                let headers = std::mem::take(response.headers_mut());
                match response.bytes().await {
                    Ok(bytes) => {
                        // The text only when the body is not JSON: the body holds it otherwise.
                        let (body, text) = match serde_json::from_slice(&bytes) {
                            Ok(body) => (body, String::new()),
                            Err(_) => (Value::Null, String::from_utf8_lossy(&bytes).into_owned()),
                        };
                        Answer {
                            route,
                            status: Some(status),
                            body,
                            text,
                            headers,
                            session,
                        }
                    }
                    Err(error) => no_answer(route, &error),
                }
            }
            Err(error) => no_answer(route, &error),
        };
        if let Some(observer) = &self.observer {
            observer(&Call {
                route,
                status: answer.status,
                elapsed: started.elapsed(),
            });
        }
        answer
    }

    /// Signs a new user up with [`PASSWORD`]; the answer when it is not a 201 with a session.
    pub async fn sign_up(&self, email: &str) -> Result<User, Box<Answer>> {
        let request = self
            .http
            .post(format!("{}/api/users/signup", self.at.auth))
            .json(&json!({"email": email, "password": PASSWORD}));
        let answer = self.call("POST /api/users/signup", request).await;
        self.session_of(email, answer, 201)
    }

    /// Signs an existing user in with [`PASSWORD`]; the answer when it is not a 200 with a
    /// session.
    pub async fn sign_in(&self, email: &str) -> Result<User, Box<Answer>> {
        let request = self
            .http
            .post(format!("{}/api/users/signin", self.at.auth))
            .json(&json!({"email": email, "password": PASSWORD}));
        let answer = self.call("POST /api/users/signin", request).await;
        self.session_of(email, answer, 200)
    }

    /// A user whose session cookie (`session=…`) is already known.
    pub fn resume(&self, email: &str, cookie: &str) -> User {
        User {
            client: self.clone(),
            email: email.to_owned(),
            cookie: cookie.to_owned(),
            id: String::new(),
        }
    }

    /// A ticket, read without a session.
    pub async fn ticket(&self, id: &str) -> Answer {
        let request = self
            .http
            .get(format!("{}/api/tickets/{id}", self.at.tickets));
        self.call("GET /api/tickets/:id", request).await
    }

    fn session_of(&self, email: &str, answer: Answer, status: u16) -> Result<User, Box<Answer>> {
        match answer.session() {
            Some(cookie) if answer.is(status) => Ok(User {
                client: self.clone(),
                email: email.to_owned(),
                cookie: cookie.to_owned(),
                id: answer.id().unwrap_or_default().to_owned(),
            }),
            _ => Err(Box::new(answer)),
        }
    }
}

fn no_answer(route: &'static str, error: &reqwest::Error) -> Answer {
    Answer {
        route,
        status: None,
        body: Value::Null,
        text: error.to_string(),
        headers: HeaderMap::new(),
        session: None,
    }
}

/// The `session=…` pair of a response's cookies.
pub fn session_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.split(';').next().filter(|c| c.starts_with("session=")))
        .map(str::to_owned)
}

/// A user of the system: the client with a session.
#[derive(Debug, Clone)]
pub struct User {
    /// The client it calls through.
    pub client: Client,
    /// Its email (the password is [`PASSWORD`]).
    pub email: String,
    /// `session=…`, as sent back in `Cookie`.
    pub cookie: String,
    /// Its id (empty for a [resumed](Client::resume) session).
    pub id: String,
}

impl User {
    fn at(&self) -> &Endpoints {
        &self.client.at
    }

    async fn send(&self, route: &'static str, request: RequestBuilder) -> Answer {
        self.client
            .call(route, request.header(COOKIE, &self.cookie))
            .await
    }

    /// Signs in again (a session that expired); keeps the new cookie.
    pub async fn refresh(&mut self) -> Result<(), Box<Answer>> {
        let again = self.client.sign_in(&self.email).await?;
        self.cookie = again.cookie;
        if !again.id.is_empty() {
            self.id = again.id;
        }
        Ok(())
    }

    /// `GET /api/users/currentuser`.
    pub async fn current(&self) -> Answer {
        let request = self
            .client
            .http
            .get(format!("{}/api/users/currentuser", self.at().auth));
        self.send("GET /api/users/currentuser", request).await
    }

    /// `POST /api/tickets`.
    pub async fn sell(&self, title: &str, price: Value) -> Answer {
        let request = self
            .client
            .http
            .post(format!("{}/api/tickets", self.at().tickets))
            .json(&json!({"title": title, "price": price}));
        self.send("POST /api/tickets", request).await
    }

    /// `PUT /api/tickets/:id`.
    pub async fn edit(&self, ticket: &str, title: &str, price: Value) -> Answer {
        let request = self
            .client
            .http
            .put(format!("{}/api/tickets/{ticket}", self.at().tickets))
            .json(&json!({"title": title, "price": price}));
        self.send("PUT /api/tickets/:id", request).await
    }

    /// `GET /api/tickets/:id`.
    pub async fn ticket(&self, id: &str) -> Answer {
        self.client.ticket(id).await
    }

    /// `POST /api/orders`.
    pub async fn order(&self, ticket: &str) -> Answer {
        let request = self
            .client
            .http
            .post(format!("{}/api/orders", self.at().orders))
            .json(&json!({"ticketId": ticket}));
        self.send("POST /api/orders", request).await
    }

    /// `GET /api/orders/:id`.
    pub async fn order_of(&self, order: &str) -> Answer {
        let request = self
            .client
            .http
            .get(format!("{}/api/orders/{order}", self.at().orders));
        self.send("GET /api/orders/:id", request).await
    }

    /// `GET /api/orders`.
    pub async fn orders(&self) -> Answer {
        let request = self
            .client
            .http
            .get(format!("{}/api/orders", self.at().orders));
        self.send("GET /api/orders", request).await
    }

    /// `DELETE /api/orders/:id`.
    pub async fn cancel(&self, order: &str) -> Answer {
        let request = self
            .client
            .http
            .delete(format!("{}/api/orders/{order}", self.at().orders));
        self.send("DELETE /api/orders/:id", request).await
    }

    /// `POST /api/payments` with a card token (`tok_visa` is accepted by the fake provider
    /// and Stripe's test mode).
    pub async fn pay(&self, order: &str, token: &str) -> Answer {
        let request = self
            .client
            .http
            .post(format!("{}/api/payments", self.at().payments))
            .json(&json!({"orderId": order, "token": token}));
        self.send("POST /api/payments", request).await
    }

    /// Orders `ticket` once the orders service knows it (its replica arrives by event): the
    /// first answer that is not a 404 or 400, or the last one after [`PROPAGATION_LIMIT`].
    pub async fn order_when_orderable(&self, ticket: &str) -> Answer {
        let deadline = tokio::time::Instant::now() + PROPAGATION_LIMIT;
        loop {
            let answer = self.order(ticket).await;
            if !(answer.is(404) || answer.is(400)) || tokio::time::Instant::now() >= deadline {
                return answer;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The ticket once it satisfies `check`; panics naming `what` after
    /// [`PROPAGATION_LIMIT`].
    pub async fn ticket_until(
        &self,
        id: &str,
        what: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + PROPAGATION_LIMIT;
        loop {
            let ticket = self.ticket(id).await.body;
            if check(&ticket) {
                return ticket;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "ticket never became {what}: {ticket}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
