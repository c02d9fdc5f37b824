//! The users of a run: each signs up, then sells, orders others' tickets, edits its own, pays
//! and cancels through the system's client until told to stop; every answer is tallied.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use ticketing_test_client::verify::OrderRecord;
use ticketing_test_client::{Call, Client, User};
use tokio_util::sync::CancellationToken;

/// What the users saw: answers by route and status (`no answer` when none came).
#[derive(Default)]
pub(crate) struct Tally {
    pub(crate) outcomes: Mutex<BTreeMap<String, u64>>,
    pub(crate) requests: AtomicU64,
}

impl Tally {
    fn count(&self, call: &Call) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let outcome = match call.status {
            Some(status) => format!("{} {}", call.route, status.as_u16()),
            None => format!("{} no answer", call.route),
        };
        *self.outcomes.lock().unwrap().entry(outcome).or_default() += 1;
    }

    pub(crate) fn of(&self, outcome: &str) -> u64 {
        self.outcomes
            .lock()
            .unwrap()
            .get(outcome)
            .copied()
            .unwrap_or_default()
    }

    /// Requests answered with `status`, whatever their route.
    pub(crate) fn answered(&self, status: u16) -> u64 {
        let suffix = format!(" {status}");
        self.outcomes
            .lock()
            .unwrap()
            .iter()
            .filter(|(outcome, _)| outcome.ends_with(&suffix))
            .map(|(_, n)| n)
            .sum()
    }
}

/// The system's client, each call counted in `tally`.
pub(crate) fn tallied_client(base: &str, tally: &Arc<Tally>) -> Client {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let tally = tally.clone();
    Client::with_http(http, ticketing_test_client::Endpoints::single(base))
        .observed(move |call| tally.count(call))
}

/// Signs a user up, trying again while the auth service is down.
pub(crate) async fn sign_up(client: &Client, email: &str) -> User {
    loop {
        if let Ok(user) = client.sign_up(email).await {
            return user;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What the users created, shared by them.
#[derive(Default)]
pub(crate) struct Created {
    /// Tickets and their seller.
    pub(crate) tickets: Vec<(String, usize)>,
    pub(crate) orders: Vec<OrderRecord>,
    /// Payments answered 201: the payment id and the order.
    pub(crate) paid: Vec<(String, String)>,
}

impl Created {
    /// A ticket another user sells, at random.
    fn others_ticket(&self, me: usize, rng: &mut fastrand::Rng) -> Option<String> {
        let others: Vec<&(String, usize)> = self
            .tickets
            .iter()
            .filter(|(_, seller)| *seller != me)
            .collect();
        (!others.is_empty()).then(|| others[rng.usize(..others.len())].0.clone())
    }
}

/// One user of a run.
/// The cards a user pays with: one the provider accepts, one it declines.
#[derive(Clone, Copy)]
pub(crate) struct Cards {
    pub(crate) accepted: &'static str,
    pub(crate) declined: &'static str,
}

pub(crate) struct Driver {
    pub(crate) me: usize,
    cards: Cards,
    pub(crate) user: User,
    pub(crate) created: Arc<Mutex<Created>>,
    rng: fastrand::Rng,
    mine: Vec<String>,
    my_orders: Vec<String>,
}

impl Driver {
    pub(crate) fn new(me: usize, user: User, created: Arc<Mutex<Created>>, cards: Cards) -> Self {
        Driver {
            me,
            cards,
            user,
            created,
            rng: fastrand::Rng::with_seed(me as u64 + 1),
            mine: Vec::new(),
            my_orders: Vec::new(),
        }
    }

    /// Sell, buy others' tickets, edit its own, pay and cancel its orders until `stop`; then
    /// (for `calm_pay`) come back to pay for an order still open, ordering a ticket when none
    /// is, until one payment goes through (the replicas catch up once nothing is killed any
    /// more). An order that can no longer be paid (cancelled, expired) is left.
    pub(crate) async fn run(
        mut self,
        tickets_per_user: usize,
        calm_pay: Duration,
        stop: CancellationToken,
    ) {
        let mut step = 0u64;
        while !stop.is_cancelled() {
            step += 1;
            let answered = match step % 7 {
                0 if self.mine.len() < tickets_per_user => self.sell(step).await,
                0 | 1 | 3 | 4 => match self.order().await {
                    Some(answered) => answered,
                    None => continue,
                },
                2 => {
                    if self.mine.is_empty() {
                        continue;
                    }
                    let ticket = &self.mine[self.rng.usize(..self.mine.len())];
                    let title = format!("show {}-{step} (edited)", self.me);
                    let price = json!(self.rng.u32(1..500));
                    self.user.edit(ticket, &title, price).await.status.is_some()
                }
                5 => {
                    if self.my_orders.is_empty() {
                        continue;
                    }
                    let at = self.rng.usize(..self.my_orders.len());
                    let order = self.my_orders.swap_remove(at);
                    self.user.cancel(&order).await.status.is_some()
                }
                _ => {
                    if self.my_orders.is_empty() {
                        continue;
                    }
                    let at = self.rng.usize(..self.my_orders.len());
                    let order = self.my_orders.swap_remove(at);
                    // One in five with a card that is declined: the order stays payable.
                    let token = if self.rng.u8(..5) == 0 {
                        self.cards.declined
                    } else {
                        self.cards.accepted
                    };
                    let status = self.pay(&order, token).await;
                    // Not known to payments yet, declined, or not answered: pay or cancel it
                    // later.
                    if matches!(status, 404 | 400 | 0) {
                        self.my_orders.push(order);
                    }
                    status != 0
                }
            };
            // A service that is down answers at once (502): do not spin on it.
            let pause = if answered { 15 } else { 100 };
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
        let deadline = tokio::time::Instant::now() + calm_pay;
        while tokio::time::Instant::now() < deadline {
            if self.my_orders.is_empty() {
                match self.order().await {
                    None => break,
                    Some(_) if self.my_orders.is_empty() => {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    Some(_) => {}
                }
                continue;
            }
            let order = self.my_orders.remove(0);
            match self.pay(&order, self.cards.accepted).await {
                201 => break,
                400 | 401 => {}
                _ => {
                    self.my_orders.push(order);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    /// Sells a ticket; whether an answer came.
    async fn sell(&mut self, step: u64) -> bool {
        let title = format!("show {}-{step}", self.me);
        let answer = self.user.sell(&title, json!(self.rng.u32(1..500))).await;
        if answer.is(201)
            && let Some(id) = answer.id()
        {
            self.mine.push(id.to_owned());
            self.created
                .lock()
                .unwrap()
                .tickets
                .push((id.to_owned(), self.me));
        }
        answer.status.is_some()
    }

    /// Orders another user's ticket; whether an answer came (`None`: no ticket to order yet).
    async fn order(&mut self) -> Option<bool> {
        let ticket = self
            .created
            .lock()
            .unwrap()
            .others_ticket(self.me, &mut self.rng)?;
        let answer = self.user.order(&ticket).await;
        if answer.is(201)
            && let Some(id) = answer.id()
        {
            self.my_orders.push(id.to_owned());
            self.created.lock().unwrap().orders.push(OrderRecord {
                id: id.to_owned(),
                buyer: self.me,
            });
        }
        Some(answer.status.is_some())
    }

    /// Pays for `order` with `token`; a payment answered 201 is recorded. The status (0: no
    /// answer).
    async fn pay(&mut self, order: &str, token: &str) -> u16 {
        let answer = self.user.pay(order, token).await;
        if answer.is(201)
            && let Some(id) = answer.id()
        {
            self.created
                .lock()
                .unwrap()
                .paid
                .push((id.to_owned(), order.to_owned()));
        }
        answer.code()
    }
}
