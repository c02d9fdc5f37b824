//! Crash tests: the services as separate OS processes (the built `auth`, `tickets`, `orders`,
//! `payments` (on localstripe) and `expiration` binaries) on a NATS server of the test's own and
//! PostgreSQL or a MongoDB-wire server, behind a small path-routing proxy standing in for the
//! ingress (round robin over a service's processes, skipping one that refuses connections). On
//! PostgreSQL three processes of each service run, as a replicated deployment does: their
//! listeners share the queue groups, their relays one outbox lease, their sign-in limits the
//! database. Users sell, buy, edit, pay and cancel concurrently while service processes are
//! SIGKILLed and restarted about once a second, and the broker is stopped once for longer than
//! the publish timeout; on PostgreSQL, a database server of the test's own also crashes once
//! (an immediate shutdown) and stays down for 4 s. Afterwards the load generator's consistency check must find nothing, the
//! payments must agree with the orders (a complete order has exactly one charge, a cancelled one
//! none kept, nothing left pending), and no event may be dead-lettered.
//!
//! Each run prints its tally (requests by outcome, kills, events). The binaries are built by
//! `cargo nextest run --workspace` (or `cargo build --bins`); `nats-server` must be on `PATH`
//! (`scripts/test` installs it).

#![allow(clippy::print_stdout)]

mod checks;
mod processes;
mod users;

use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ticketing_test_client::verify::{self, Record, UserRecord};
use ticketing_test_live as live;
use ticketing_test_live::process::{self, NatsServer, PostgresServer, wait_for_port};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use processes::{Brokers, Cluster, Supervised, log_file, servers};
use ticketing_test_live::ingress::{Ports, SERVICES};
use users::{Created, Driver, Tally};

/// How long users buy and cancel under faults.
const CHAOS: Duration = Duration::from_secs(30);

/// Time between two kills.
const KILL_EVERY: Duration = Duration::from_millis(900);
/// When the broker stops, and for how long (the publish timeout is 5 s).
const BROKER_STOP_AT: Duration = Duration::from_secs(10);
const BROKER_DOWN_FOR: Duration = Duration::from_secs(8);
/// On PostgreSQL, when the test's own database server crashes (an immediate shutdown), and for
/// how long it stays down.
const DATABASE_CRASH_AT: Duration = Duration::from_secs(21);
const DATABASE_DOWN_FOR: Duration = Duration::from_secs(4);
/// Users driving the system at once.
const USERS: usize = 8;
/// The orders' expiration window, in seconds.
const WINDOW_SECONDS: &str = "6";
const JWT_KEY: &str = "crash-test-key-of-at-least-32-bytes-long";

#[derive(Clone, Copy)]
pub(crate) enum Store {
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
    /// pay during the faults.
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

/// The cards the users pay with: localstripe charges the first and declines the second.
const CARDS: users::Cards = users::Cards {
    accepted: "pm_card_visa",
    declined: "pm_card_chargeCustomerFail",
};

/// Partitions of the cluster run's stream (its listeners in per-key order).
const PARTITIONS: u32 = 8;

/// What goes wrong during a run.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Faults {
    /// One nats-server; service processes SIGKILLed about once a second, the broker stopped
    /// once for longer than the publish timeout; on PostgreSQL, the test's own database server
    /// crashed once.
    KillsAndOutage,
    /// A three-server JetStream cluster (the repository's `nats.conf`, a current release),
    /// streams with three replicas and eight partitions, the replica listeners in per-key order
    /// (`LISTENER_ORDER=key`); the events stream's leader SIGKILLed mid-flow and started
    /// again. The services are not killed.
    LeaderLoss,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_and_postgres_agree_after_kills_a_broker_outage_and_a_database_crash() {
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
fn bin_dir() -> std::path::PathBuf {
    process::bin_dir(&["auth", "tickets", "orders", "payments", "expiration"])
}

/// The environment variable, and its value, that gives a service its database.
type StoreEnv = dyn Fn(&str) -> (&'static str, String) + Send + Sync;

async fn crash_run(store: Store, faults: Faults) {
    let bins = bin_dir();
    let label = match (store, faults) {
        (Store::Postgres, Faults::KillsAndOutage) => "postgres",
        (Store::Mongo, Faults::KillsAndOutage) => "mongo",
        (_, Faults::LeaderLoss) => "cluster",
    };
    // On PostgreSQL, three processes of each service behind the proxy (a replicated deployment,
    // each replica killed in turn); one of each otherwise.
    let per_service = match (store, faults) {
        (Store::Postgres, Faults::KillsAndOutage) => 3,
        _ => 1,
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

    // With the kills and the broker's outage on PostgreSQL, a database server of the test's
    // own, which crashes once.
    let mut database_server = match (store, faults) {
        (Store::Postgres, Faults::KillsAndOutage) => {
            Some(PostgresServer::start(&dir.join("postgres")).await)
        }
        _ => None,
    };
    // Each service's database, as its own process would be configured.
    let store_env: Box<StoreEnv> = match store {
        Store::Postgres => {
            let url = match &database_server {
                Some(server) => server.create_database("crash").await,
                None => live::fresh_pg_database("crash").await,
            };
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
    let ports = Ports::free(per_service);
    // The fake provider keeps its charges in its process: a refund after a restart, or on
    // another process, would not find the charge. The processes share a Stripe (localstripe,
    // which `scripts/test` starts) that outlives them, as Stripe does in production.
    let stripe =
        std::env::var("LOCALSTRIPE_URL").unwrap_or_else(|_| "http://127.0.0.1:8420".to_owned());
    let nats_url = broker.url();
    let start = |service: &'static str, replica: usize, port: u16| {
        let bin = bins.join(service);
        let log = dir.join(format!("{service}-{replica}.log"));
        let store_env = store_env.clone();
        let nats_url = nats_url.clone();
        let stripe = stripe.clone();
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
                .env("PAYMENT_PROVIDER", "stripe")
                .env("PAYMENT_REPAIR_SECONDS", "1")
                // Fifteen processes on a server of 100 connections, beside the other tests.
                .env("DATABASE_MAX_CONNECTIONS", "3")
                .env(
                    "RUST_LOG",
                    std::env::var("CRASH_RUST_LOG").unwrap_or_else(|_| "warn".into()),
                )
                .stdin(Stdio::null())
                .stdout(log_file(&log))
                .stderr(log_file(&log));
            if service != "expiration" {
                let (name, value) = store_env(service);
                command.env(name, value);
            }
            if faults == Faults::LeaderLoss {
                // The cluster is a current release: the orders and payments services' replica
                // listeners take each record's events in order, on a stream of eight
                // partitions, through the leader's loss.
                command
                    .env("LISTENER_ORDER", "key")
                    .env("NATS_PARTITIONS", PARTITIONS.to_string());
            }
            if service == "payments" {
                command
                    .env("STRIPE_KEY", "sk_test_crash")
                    .env("STRIPE_BASE_URL", &stripe);
            }
            command
        })
    };
    // Every process of every service: (service, process, port).
    let services: Vec<(&'static str, Supervised, u16)> = SERVICES
        .iter()
        .flat_map(|service| {
            ports
                .of(service)
                .iter()
                .enumerate()
                .map(|(replica, port)| (*service, start(service, replica, *port), *port))
                .collect::<Vec<_>>()
        })
        .collect();
    for (name, _, port) in services.iter().filter(|(name, _, _)| *name != "expiration") {
        wait_for_port(*port, name, Duration::from_secs(30)).await;
    }

    let proxy_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", proxy_listener.local_addr().unwrap());
    tokio::spawn(ticketing_test_live::ingress::serve(
        proxy_listener,
        ports.clone(),
        Duration::from_secs(20),
    ));

    let tally = Arc::new(Tally::default());
    let client = users::tallied_client(&base, &tally);
    let mut users = Vec::new();
    for n in 0..USERS {
        let email = format!("crash-{n}-{}@test.com", ticketing_core::Id::new());
        users.push(users::sign_up(&client, &email).await);
    }

    // Users buy and cancel while the chaos runs.
    let created = Arc::new(Mutex::new(Created::default()));
    let stop_users = CancellationToken::new();
    let drivers: Vec<_> = users
        .iter()
        .enumerate()
        .map(|(n, user)| {
            let driver = Driver::new(n, user.clone(), created.clone(), CARDS);
            let stop = stop_users.clone();
            tokio::spawn(driver.run(store.tickets_per_user(), store.calm_pay(), stop))
        })
        .collect();

    let started = tokio::time::Instant::now();
    let mut kills = 0u64;
    let mut leader_killed = None;
    let mut database_crashed = false;
    match &mut broker {
        Brokers::One(broker) => {
            // By service (tickets, orders, payments, expiration, tickets, orders, auth, payments),
            // each time the next process of it.
            let order = [1, 2, 3, 4, 1, 2, 0, 3];
            let victim = |kills: u64| {
                let kind = order[kills as usize % order.len()];
                kind * per_service + (kills as usize / order.len()) % per_service
            };
            // The kills go on while the broker or the database is down.
            let kill_for = async |down: Duration, kills: &mut u64| {
                let back_at = tokio::time::Instant::now() + down;
                while tokio::time::Instant::now() < back_at {
                    tokio::time::sleep(KILL_EVERY).await;
                    services[victim(*kills)].1.kill();
                    *kills += 1;
                }
            };
            let mut broker_stopped = false;
            while started.elapsed() < CHAOS {
                tokio::time::sleep(KILL_EVERY).await;
                services[victim(kills)].1.kill();
                kills += 1;
                if let Some(server) = database_server
                    .as_mut()
                    .filter(|_| started.elapsed() >= DATABASE_CRASH_AT && !database_crashed)
                {
                    database_crashed = true;
                    server.crash().await;
                    kill_for(DATABASE_DOWN_FOR, &mut kills).await;
                    server.spawn().await;
                }
                if !broker_stopped && started.elapsed() >= BROKER_STOP_AT {
                    broker_stopped = true;
                    broker.stop().await;
                    kill_for(BROKER_DOWN_FOR, &mut kills).await;
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
            let mut infos = Vec::new();
            for (stream, what) in [
                ("TICKETING", "the events stream's replicas"),
                ("TICKETING_DLQ", "the dead-letter stream's replicas"),
            ] {
                let info = js
                    .get_stream(stream)
                    .await
                    .unwrap()
                    .info()
                    .await
                    .unwrap()
                    .clone();
                assert_eq!(info.config.num_replicas, 3, "{what}");
                infos.push(info);
            }
            let info = infos.swap_remove(0);
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
    for (name, _, port) in services.iter().filter(|(name, _, _)| *name != "expiration") {
        wait_for_port(*port, name, Duration::from_secs(60)).await;
    }

    let paid = created.lock().unwrap().paid.clone();
    let mut record = {
        let created = created.lock().unwrap();
        Record {
            target: base.clone(),
            users: users
                .iter()
                .map(|user| UserRecord {
                    email: user.email.clone(),
                    cookie: user.cookie.clone(),
                })
                .collect(),
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
        checks::payments_agree(store, &payments_database, &record, &paid, store.settle()).await;
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
    if !issues.is_empty() {
        diagnose(&broker.url(), faults, &issues).await;
    }
    broker.stop().await;
    if let Some(server) = &mut database_server {
        assert!(database_crashed, "the database server never crashed");
        server.stop().await;
    }
    let server_errors = tally.answered(500);
    println!(
        "crash test on NATS + {label}, {per_service} process(es) per service: {} requests ({:?}), \
         {kills} kills, {starts} process starts, \
         {}, {ticket_count} tickets and {order_count} \
         orders created, {paid_orders} paid, {events} events in the stream, {} dead letters, \
         {} disagreements, {} payment disagreements; \
         {:.0?} of faults, {checked_in:.0?} to settle and check",
        tally.requests.load(Ordering::Relaxed),
        tally.outcomes.lock().unwrap(),
        match &leader_killed {
            None if database_crashed => format!(
                "broker stopped once for {BROKER_DOWN_FOR:?}, database crashed once and down for \
                 {DATABASE_DOWN_FOR:?}"
            ),
            None => format!("broker stopped once for {BROKER_DOWN_FOR:?}"),
            Some(leader) =>
                format!("stream leader {leader} SIGKILLed and back after {BROKER_DOWN_FOR:?}"),
        },
        dead_letters.len(),
        issues.len(),
        payment_issues.len(),
        CHAOS,
    );
    for (what, found) in [
        ("the services disagree", &issues),
        ("payments disagree with orders", &payment_issues),
        ("dead letters", &dead_letters),
    ] {
        assert!(
            found.is_empty(),
            "{what} (logs in {}):\n{}",
            dir.display(),
            found.join("\n")
        );
    }
    assert!(
        tally.of("POST /api/tickets 201") > 0
            && tally.of("POST /api/orders 201") > 0
            && tally.of("DELETE /api/orders/:id 204") > 0
            && tally.of("POST /api/payments 201") > 0,
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

/// Where the events stand when the services disagree: on the cluster run, the stream's last
/// `ticket:updated` of each ticket a replica is behind on (a few); then each consumer's
/// position and what it holds.
async fn diagnose(urls: &str, faults: Faults, issues: &[String]) {
    let servers: Vec<&str> = urls.split(',').collect();
    let client = match async_nats::connect(servers).await {
        Ok(client) => client,
        Err(e) => return println!("cannot reach the broker for the diagnosis: {e}"),
    };
    let js = async_nats::jetstream::new(client);
    let stream = match js.get_stream("TICKETING").await {
        Ok(stream) => stream,
        Err(e) => return println!("cannot read the stream for the diagnosis: {e}"),
    };
    if faults == Faults::LeaderLoss {
        let behind = issues
            .iter()
            .filter_map(|i| i.split(" shows ticket ").nth(1)?.split(' ').next());
        for id in behind.take(5) {
            let partition = ticketing_core::partition::partition(id, PARTITIONS);
            let subject = format!("ticketing._k.ticket:updated.{partition}.{id}");
            match stream.get_last_raw_message_by_subject(&subject).await {
                Ok(raw) => println!(
                    "stream's last ticket:updated of {id}: seq {} {}",
                    raw.sequence,
                    String::from_utf8_lossy(&raw.payload)
                ),
                Err(e) => println!("no ticket:updated of {id} on {subject}: {e}"),
            }
        }
    }
    let mut consumers = stream.consumers();
    while let Some(info) = futures::StreamExt::next(&mut consumers).await {
        let info = match info {
            Ok(info) => info,
            Err(e) => return println!("consumer listing failed: {e}"),
        };
        println!(
            "consumer {}: delivered {}, ack floor {}, pending {}, ack pending {}, redelivered {}, waiting {}",
            info.name,
            info.delivered.stream_sequence,
            info.ack_floor.stream_sequence,
            info.num_pending,
            info.num_ack_pending,
            info.num_redelivered,
            info.num_waiting
        );
    }
}
