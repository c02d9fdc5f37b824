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
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Answer, Client, Endpoints, User};

/// A user the run signed up.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserRecord {
    /// The email it signed up with (the password is [`PASSWORD`](crate::PASSWORD)).
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
    let client = Client::new(Endpoints::single(&record.target));
    let mut users: Vec<User> = record
        .users
        .iter()
        .map(|user| client.resume(&user.email, &user.cookie))
        .collect();
    let deadline = tokio::time::Instant::now() + settle;
    let mut issues = loop {
        let issues = read_only_checks(&client, record, &mut users).await?;
        if issues.is_empty() || tokio::time::Instant::now() >= deadline {
            break issues;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    for (user, record) in users.iter().zip(&mut record.users) {
        record.cookie.clone_from(&user.cookie);
    }
    if issues.is_empty() {
        println!(
            "the services agree; now ordering and cancelling every free ticket to check it can be ordered"
        );
        issues.extend(orderability(&client, record).await?);
    }
    Ok(issues)
}

const ACTIVE: [&str; 3] = ["created", "awaiting:payment", "complete"];

/// The answer's body if it came with `status`; otherwise what it was, as an error.
fn answered(answer: Answer, status: u16) -> Result<Value, String> {
    if answer.is(status) {
        Ok(answer.body)
    } else {
        Err(answer.to_string())
    }
}

/// Every order of `user`; signs it in again when its session expired.
async fn orders_of(user: &mut User) -> Result<Vec<Value>, String> {
    let mut answer = user.orders().await;
    if answer.is(401) {
        user.refresh()
            .await
            .map_err(|refused| format!("sign-in of {}: {refused}", user.email))?;
        answer = user.orders().await;
    }
    match answered(answer, 200)? {
        Value::Array(orders) => Ok(orders),
        other => Err(format!("GET /api/orders is not a list: {other}")),
    }
}

async fn read_only_checks(
    client: &Client,
    record: &Record,
    users: &mut [User],
) -> Result<Vec<String>, String> {
    let mut issues = Vec::new();
    let mut tickets: BTreeMap<String, Value> = BTreeMap::new();
    for id in &record.tickets {
        let answer = client.ticket(id).await;
        match answer.status {
            Some(status) if status.as_u16() == 200 => {
                tickets.insert(id.clone(), answer.body);
            }
            Some(status) => issues.push(format!("ticket {id} answers {status}")),
            None => return Err(answer.to_string()),
        }
    }
    // Every user's orders, not only those the record lists: an order committed whose
    // answer was lost (a crash, a timeout) still holds its ticket.
    let mut orders: HashMap<String, Value> = HashMap::new();
    if let Some(order) = record.orders.iter().find(|o| o.buyer >= users.len()) {
        return Err(format!("the state file has no user {}", order.buyer));
    }
    for user in users.iter_mut() {
        for order in orders_of(user).await? {
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
async fn orderability(client: &Client, record: &Record) -> Result<Vec<String>, String> {
    let email = format!("verify-{}@example.com", ticketing_core::Id::new());
    let verifier = client
        .sign_up(&email)
        .await
        .map_err(|refused| format!("the verifier's sign-up: {refused}"))?;
    let mut issues = Vec::new();
    for id in &record.tickets {
        let ticket = answered(client.ticket(id).await, 200)?;
        if ticket.get("orderId").is_some() {
            continue;
        }
        let answer = verifier.order(id).await;
        if !answer.is(201) {
            issues.push(format!("free ticket {id} cannot be ordered: {answer}"));
            continue;
        }
        let order_id = answer.id().unwrap_or_default();
        let cancelled = verifier.cancel(order_id).await;
        if !cancelled.is(204) {
            issues.push(format!(
                "the verifier's order {order_id} of ticket {id} could not be cancelled: {cancelled}"
            ));
        }
    }
    Ok(issues)
}
