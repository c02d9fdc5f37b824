//! `--verify`: a consistency check anyone can run against a running system, through its
//! public HTTP API only.
//!
//! It reads the state file a load run wrote (users with sessions, tickets, orders) and reports
//! every disagreement between the services:
//!
//! - a ticket held by an order that is not active (cancelled), or by an order nobody knows;
//! - an active order whose ticket is not held by it;
//! - an order whose ticket version, title or price differs from the ticket's;
//! - an order past its window still open;
//! - a ticket that cannot be ordered: every ticket that is not held is ordered by a user of the
//!   verifier's own and the order cancelled again (this changes the system: two new versions
//!   of each free ticket and one cancelled order each).
//!
//! The read-only checks repeat until they pass or the settle time is up, since events take a
//! moment to propagate; the report then lists what is still wrong, and the exit code is 1.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use reqwest::header::COOKIE;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The `session=…` pair of a response's cookies.
pub fn session_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.split(';').next().filter(|c| c.starts_with("session=")))
        .map(str::to_owned)
}

/// The password of every user the load generator signs up.
pub const PASSWORD: &str = "password123";

/// A user the run signed up.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserRecord {
    /// The email it signed up with (the password is [`PASSWORD`]).
    pub email: String,
    /// `session=…`, as sent back in `Cookie`.
    pub cookie: String,
}

/// An order the run placed, and the index of its buyer in `users`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OrderRecord {
    /// The order id.
    pub id: String,
    /// Its buyer, an index into [`Record::users`].
    pub buyer: usize,
}

/// What a run created.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    /// The system's base URL.
    pub target: String,
    /// The users.
    pub users: Vec<UserRecord>,
    /// The tickets' ids.
    pub tickets: Vec<String>,
    /// The orders.
    pub orders: Vec<OrderRecord>,
}

impl Record {
    /// Writes the record as JSON.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(path, json)
    }

    /// Reads a record written by [`save`](Self::save).
    pub fn load(path: &Path) -> Result<Self, String> {
        let bytes =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| format!("{} is not a state file: {e}", path.display()))
    }
}

/// Runs the check; the process's exit code.
pub async fn run(target: &str, state: &Path, settle: Duration) -> std::process::ExitCode {
    let mut record = match Record::load(state) {
        Ok(record) => record,
        Err(error) => {
            eprintln!("error: {error}");
            return std::process::ExitCode::from(2);
        }
    };
    if !target.is_empty() {
        record.target = target.trim_end_matches('/').to_owned();
    }
    println!(
        "verifying {} tickets and {} orders of {} users at {}",
        record.tickets.len(),
        record.orders.len(),
        record.users.len(),
        record.target
    );
    let issues = match check(&mut record, settle).await {
        Ok(issues) => issues,
        Err(error) => {
            eprintln!("error: {error}");
            return std::process::ExitCode::from(2);
        }
    };
    if issues.is_empty() {
        println!("consistent: no disagreement found");
        std::process::ExitCode::SUCCESS
    } else {
        println!("{} disagreement(s):", issues.len());
        for issue in &issues {
            println!("- {issue}");
        }
        std::process::ExitCode::FAILURE
    }
}

/// The disagreements found in what `record` lists: the read-only checks, repeated until they
/// pass or `settle` is up; then, if they passed, the orderability check (which orders and
/// cancels every free ticket). `Err` when the system cannot be read at all.
pub async fn check(record: &mut Record, settle: Duration) -> Result<Vec<String>, String> {
    let verifier = Verifier {
        http: reqwest::Client::new(),
        base: record.target.trim_end_matches('/').to_owned(),
    };
    let deadline = tokio::time::Instant::now() + settle;
    let mut issues = loop {
        let issues = verifier.read_only_checks(record).await?;
        if issues.is_empty() || tokio::time::Instant::now() >= deadline {
            break issues;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    if issues.is_empty() {
        println!(
            "the services agree; now ordering and cancelling every free ticket to check it can be ordered"
        );
        issues.extend(verifier.orderability(record).await?);
    }
    Ok(issues)
}

struct Verifier {
    http: reqwest::Client,
    base: String,
}

const ACTIVE: [&str; 3] = ["created", "awaiting:payment", "complete"];

impl Verifier {
    async fn get(&self, path: &str, cookie: Option<&str>) -> Result<reqwest::Response, String> {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(cookie) = cookie {
            request = request.header(COOKIE, cookie);
        }
        request.send().await.map_err(|e| format!("GET {path}: {e}"))
    }

    /// Signs `user` in again (its session may have expired); updates its cookie.
    async fn sign_in(&self, user: &mut UserRecord) -> Result<(), String> {
        let response = self
            .http
            .post(format!("{}/api/users/signin", self.base))
            .json(&json!({"email": user.email, "password": PASSWORD}))
            .send()
            .await
            .map_err(|e| format!("sign-in of {}: {e}", user.email))?;
        if response.status() != StatusCode::OK {
            return Err(format!(
                "sign-in of {} answered {}",
                user.email,
                response.status()
            ));
        }
        user.cookie = session_cookie(&response)
            .ok_or_else(|| format!("sign-in of {} set no session", user.email))?;
        Ok(())
    }

    /// Every order of `user`, by id.
    async fn orders_of(&self, user: &mut UserRecord) -> Result<Vec<Value>, String> {
        let mut response = self.get("/api/orders", Some(&user.cookie)).await?;
        if response.status() == StatusCode::UNAUTHORIZED {
            self.sign_in(user).await?;
            response = self.get("/api/orders", Some(&user.cookie)).await?;
        }
        if response.status() != StatusCode::OK {
            return Err(format!(
                "GET /api/orders for {} answered {}",
                user.email,
                response.status()
            ));
        }
        response
            .json()
            .await
            .map_err(|e| format!("GET /api/orders: {e}"))
    }

    async fn read_only_checks(&self, record: &mut Record) -> Result<Vec<String>, String> {
        let mut issues = Vec::new();
        let mut tickets: BTreeMap<String, Value> = BTreeMap::new();
        for id in &record.tickets {
            let response = self.get(&format!("/api/tickets/{id}"), None).await?;
            match response.status() {
                StatusCode::OK => {
                    let ticket: Value = response
                        .json()
                        .await
                        .map_err(|e| format!("GET /api/tickets/{id}: {e}"))?;
                    tickets.insert(id.clone(), ticket);
                }
                status => issues.push(format!("ticket {id} answers {status}")),
            }
        }
        // Every user's orders, not only those the record lists: an order committed whose
        // answer was lost (a crash, a timeout) still holds its ticket.
        let mut orders: HashMap<String, Value> = HashMap::new();
        if let Some(order) = record.orders.iter().find(|o| o.buyer >= record.users.len()) {
            return Err(format!("the state file has no user {}", order.buyer));
        }
        for user in &mut record.users {
            for order in self.orders_of(user).await? {
                if let Some(id) = order["id"].as_str() {
                    orders.insert(id.to_owned(), order);
                }
            }
        }
        for order in &record.orders {
            if !orders.contains_key(&order.id) {
                issues.push(format!(
                    "order {} is missing from its buyer's orders",
                    order.id
                ));
            }
        }
        let now = Utc::now();
        for (id, ticket) in &tickets {
            if let Some(holder) = ticket["orderId"].as_str() {
                match orders.get(holder) {
                    Some(order) if !ACTIVE.contains(&order["status"].as_str().unwrap_or("")) => {
                        issues.push(format!(
                            "ticket {id} is held by order {holder}, which is {}",
                            order["status"].as_str().unwrap_or("?")
                        ));
                    }
                    Some(_) => {}
                    None => issues.push(format!(
                        "ticket {id} is held by order {holder}, which none of the users has"
                    )),
                }
            }
        }
        for (id, order) in &orders {
            let status = order["status"].as_str().unwrap_or("");
            let ticket_id = order["ticket"]["id"].as_str().unwrap_or("");
            let Some(ticket) = tickets.get(ticket_id) else {
                continue;
            };
            if ACTIVE.contains(&status) && ticket["orderId"].as_str() != Some(id.as_str()) {
                issues.push(format!(
                    "order {id} is {status} but its ticket {ticket_id} is held by {}",
                    ticket["orderId"].as_str().unwrap_or("nobody")
                ));
            }
            let seen = (
                &order["ticket"]["version"],
                &order["ticket"]["price"],
                &order["ticket"]["title"],
            );
            let actual = (&ticket["version"], &ticket["price"], &ticket["title"]);
            if seen != actual {
                issues.push(format!(
                    "order {id} shows ticket {ticket_id} at version {} for {} ({}); the ticket is at version {} for {} ({})",
                    seen.0, seen.1, seen.2, actual.0, actual.1, actual.2
                ));
            }
            if status == "created" {
                let expires = order["expiresAt"]
                    .as_str()
                    .and_then(|t| t.parse::<DateTime<Utc>>().ok());
                if let Some(expires) = expires {
                    // A few seconds for the timer to fire and the cancellation to land.
                    if expires + chrono::Duration::seconds(10) < now {
                        issues.push(format!("order {id} expired at {expires} and is still open"));
                    }
                }
            }
        }
        Ok(issues)
    }

    /// Orders and cancels every ticket no order holds, as a user of its own.
    async fn orderability(&self, record: &Record) -> Result<Vec<String>, String> {
        let email = format!("verify-{}@example.com", ticketing_core::Id::new());
        let response = self
            .http
            .post(format!("{}/api/users/signup", self.base))
            .json(&json!({"email": email, "password": PASSWORD}))
            .send()
            .await
            .map_err(|e| format!("sign-up: {e}"))?;
        let cookie = session_cookie(&response)
            .ok_or_else(|| format!("the verifier's sign-up answered {}", response.status()))?;
        let mut issues = Vec::new();
        for id in &record.tickets {
            let ticket: Value = self
                .get(&format!("/api/tickets/{id}"), None)
                .await?
                .json()
                .await
                .map_err(|e| format!("GET /api/tickets/{id}: {e}"))?;
            if ticket.get("orderId").is_some() {
                continue;
            }
            let response = self
                .http
                .post(format!("{}/api/orders", self.base))
                .header(COOKIE, &cookie)
                .json(&json!({"ticketId": id}))
                .send()
                .await
                .map_err(|e| format!("POST /api/orders: {e}"))?;
            if response.status() != StatusCode::CREATED {
                let status = response.status();
                let body = response.text().await.unwrap_or_default();
                issues.push(format!(
                    "free ticket {id} cannot be ordered: {status} {body}"
                ));
                continue;
            }
            let order: Value = response
                .json()
                .await
                .map_err(|e| format!("POST /api/orders: {e}"))?;
            let order_id = order["id"].as_str().unwrap_or_default();
            let cancelled = self
                .http
                .delete(format!("{}/api/orders/{order_id}", self.base))
                .header(COOKIE, &cookie)
                .send()
                .await
                .map_err(|e| format!("DELETE /api/orders/{order_id}: {e}"))?;
            if cancelled.status() != StatusCode::NO_CONTENT {
                issues.push(format!(
                    "the verifier's order {order_id} of ticket {id} could not be cancelled: {}",
                    cancelled.status()
                ));
            }
        }
        Ok(issues)
    }
}
