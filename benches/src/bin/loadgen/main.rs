//! Load generator: drives a running ticketing system over HTTP the way its users do.
//!
//! N users sign up; each sells tickets; other users buy them as soon as they are orderable
//! (the delay from `201` on the ticket to `201` on the order is the event propagation delay:
//! ticket created → replicated into the orders service → orderable); half the buyers cancel,
//! a quarter pay (`tok_visa`: the fake provider's) and wait for the order to read `complete`. Then
//! a read phase hammers `GET /api/tickets/:id` and, in the same run, a bare axum JSON handler
//! in a process of its own, as the limit. With `--database-url` (the system's `DATABASE_URL`),
//! the same process also serves a bare axum + sqlx handler running the tickets store's
//! `SELECT` on the tickets service's schema with the same pool size: our overhead over the
//! database itself. The read targets take turns in rounds (`--read-rounds`).
//!
//! Before and after the concurrent phase it reads the services' `/metrics` (`--metrics`, by
//! default the target's) and reports the stages of a ticket's way to the orders service
//! (request, relay, delivery, handling; see `stages.rs`) and the share of deliveries answered
//! "wait".
//!
//! ```text
//! JWT_KEY=dev-only-secret-key-of-32-bytes-or-more cargo run --release -p ticketing &
//! cargo run --release -p ticketing-benches --bin loadgen -- --target http://127.0.0.1:3000
//! # on PostgreSQL:
//! DATABASE_URL=postgres://… cargo run --release -p ticketing &
//! cargo run --release -p ticketing-benches --bin loadgen -- --database-url postgres://…
//! ```
//!
//! It keeps what it created (users with their sessions, tickets, orders) in a state file
//! (`--state`, default `loadgen-state.json`); `--verify` then reads the running system through
//! its public HTTP API and reports every disagreement between the services (see `verify.rs`).
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod reads;
mod stages;

use reads::{Reads, hammer, serve_bare, spawn_bare};

use ticketing_test_client::{Client, Endpoints, User, verify};

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

#[derive(Debug, Parser)]
#[command(about = "Drive a running ticketing system and report throughput and latency")]
struct Args {
    /// The system's base URL.
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    target: String,
    /// Users who sign up.
    #[arg(long, default_value_t = 40)]
    users: usize,
    /// Tickets each user sells.
    #[arg(long, default_value_t = 5)]
    tickets_per_user: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Seconds of the read phase, per target.
    #[arg(long, default_value_t = 10)]
    read_seconds: u64,
    /// Rounds of the read phase: the targets take turns, each reading `read_seconds / rounds`
    /// per round.
    #[arg(long, default_value_t = 10)]
    read_rounds: u32,
    /// Tickets sold one at a time, after the concurrent phase, to measure propagation on an
    /// otherwise idle system.
    #[arg(long, default_value_t = 100)]
    probes: usize,
    /// The system's PostgreSQL (its `DATABASE_URL`): adds a bare axum + sqlx handler to the
    /// read phase, reading the same row from the tickets service's schema.
    #[arg(long, env = "LOADGEN_DATABASE_URL")]
    database_url: Option<String>,
    /// The tickets service's schema.
    #[arg(long, default_value = "tickets")]
    tickets_schema: String,
    /// Pool size of the bare sqlx handler: the tickets store's default.
    #[arg(long, default_value_t = 10)]
    pool_size: u32,
    /// Where to keep what the run created, for `--verify`.
    #[arg(long, default_value = "loadgen-state.json")]
    state: std::path::PathBuf,
    /// Do not load the system: check, through the public API, that the services agree about
    /// everything the state file lists; exits 1 on any disagreement.
    #[arg(long)]
    verify: bool,
    /// With `--verify`: how long to let events settle before reporting (the read-only checks
    /// repeat until they pass or this passes).
    #[arg(long, default_value_t = 30)]
    settle_seconds: u64,
    /// Milliseconds between two polls of a ticket (or order) not yet orderable (payable).
    #[arg(long, default_value_t = 1)]
    poll_ms: u64,
    /// A process's `/metrics` (repeat for several; default: the target's): read before and
    /// after the concurrent phase to break propagation into its stages.
    #[arg(long = "metrics")]
    metrics: Vec<String>,
    /// Internal: serve the bare handlers on this port (the limits of the read phase).
    #[arg(long, hide = true)]
    serve_bare: Option<u16>,
}

/// Latencies per route.
#[derive(Default)]
struct Stats {
    routes: BTreeMap<&'static str, Histogram<u64>>,
    propagation: Option<Histogram<u64>>,
    quiet_propagation: Option<Histogram<u64>>,
    /// From the payment's `201` to the order reading `complete`.
    payment_propagation: Option<Histogram<u64>>,
    /// Under the load: when each ticket was created, and its propagation.
    loaded: Vec<(Instant, Duration)>,
    quiet: bool,
}

impl Stats {
    fn record(&mut self, route: &'static str, elapsed: Duration) {
        if self.quiet {
            return;
        }
        self.routes
            .entry(route)
            .or_insert_with(|| Histogram::new(3).expect("histogram"))
            .record(elapsed.as_micros() as u64)
            .expect("auto-resizing histogram");
    }

    fn record_propagation(&mut self, created: Instant, elapsed: Duration) {
        let histogram = if self.quiet {
            &mut self.quiet_propagation
        } else {
            self.loaded.push((created, elapsed));
            &mut self.propagation
        };
        histogram
            .get_or_insert_with(|| Histogram::new(3).expect("histogram"))
            .record(elapsed.as_micros() as u64)
            .expect("auto-resizing histogram");
    }
}

type Shared = Arc<Mutex<Stats>>;

/// The system's client, every call recorded in the stats.
struct Load {
    client: Client,
    stats: Shared,
    /// The pause between two polls of a replica not there yet.
    poll: Duration,
}

impl Load {
    async fn sign_up(&self, n: usize) -> User {
        let email = format!("load-{n}-{}@example.com", ticketing_core::Id::new());
        self.client
            .sign_up(&email)
            .await
            .unwrap_or_else(|refused| panic!("sign-up: {refused}"))
    }

    async fn sell(&self, seller: &User, n: usize) -> (String, Instant) {
        let answer = seller
            .sell(&format!("ticket {n}"), json!(10 + n % 90))
            .await;
        let created = Instant::now();
        let id = answer.id().map(str::to_owned);
        assert!(answer.is(201), "{answer}");
        (id.expect("a ticket id"), created)
    }

    /// Orders as soon as the ticket is orderable; returns the order id.
    async fn buy(&self, buyer: &User, ticket: &str, created: Instant) -> String {
        loop {
            let answer = buyer.order(ticket).await;
            match answer.code() {
                201 => {
                    self.stats
                        .lock()
                        .expect("stats")
                        .record_propagation(created, created.elapsed());
                    return answer.id().expect("an order id").to_owned();
                }
                404 => tokio::time::sleep(self.poll).await,
                _ => panic!("{answer}"),
            }
        }
    }

    /// Pays for the order as soon as the payments service knows it (`tok_visa`, the fake
    /// provider's), then waits until the orders service shows it complete.
    async fn pay(&self, buyer: &User, order: &str) {
        loop {
            let answer = buyer.pay(order, "tok_visa").await;
            match answer.code() {
                201 => break,
                404 => tokio::time::sleep(self.poll).await,
                _ => panic!("{answer}"),
            }
        }
        let paid = Instant::now();
        loop {
            let order = buyer.order_of(order).await.expect(200);
            if order["status"] == "complete" {
                let mut stats = self.stats.lock().expect("stats");
                stats
                    .payment_propagation
                    .get_or_insert_with(|| Histogram::new(3).expect("histogram"))
                    .record(paid.elapsed().as_micros() as u64)
                    .expect("auto-resizing histogram");
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    async fn cancel(&self, buyer: &User, order: &str) {
        buyer.cancel(order).await.expect(204);
    }
}

/// One row of the report's table: what was measured, how many, how many a second, p50, p99.
fn print_row(what: &str, count: u64, rate: f64, latencies: &Histogram<u64>) {
    println!(
        "{what:<26} {count:>9} {rate:>10.0} {:>10} {:>10}",
        ms(latencies.value_at_quantile(0.5)),
        ms(latencies.value_at_quantile(0.99))
    );
}

fn ms(micros: u64) -> String {
    format!("{:.2} ms", micros as f64 / 1000.0)
}

fn bar(len: u64, message: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{msg:>24} [{bar:40}] {pos}/{len} {per_sec}")
            .expect("style")
            .progress_chars("=> "),
    );
    bar.set_message(message.to_owned());
    bar
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    if let Some(port) = args.serve_bare {
        let database = args
            .database_url
            .clone()
            .map(|url| (url, args.tickets_schema.clone(), args.pool_size));
        runtime.block_on(serve_bare(port, database));
        return std::process::ExitCode::SUCCESS;
    }
    if args.verify {
        return runtime.block_on(verify::run(
            &args.target,
            &args.state,
            Duration::from_secs(args.settle_seconds),
        ));
    }
    runtime.block_on(run(args));
    std::process::ExitCode::SUCCESS
}

async fn run(args: Args) {
    let stats: Shared = Arc::default();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()
        .expect("client");
    let observed = stats.clone();
    let client = Arc::new(Load {
        client: Client::with_http(http.clone(), Endpoints::single(&args.target)).observed(
            move |call| {
                if call.status.is_some() {
                    observed
                        .lock()
                        .expect("stats")
                        .record(call.route, call.elapsed);
                }
            },
        ),
        stats: stats.clone(),
        poll: Duration::from_millis(args.poll_ms),
    });
    let limit = Arc::new(tokio::sync::Semaphore::new(args.concurrency));

    // Sign-ups.
    let signup_started = Instant::now();
    let progress = bar(args.users as u64, "sign up");
    let mut tasks = Vec::new();
    for n in 0..args.users {
        let (client, limit, progress) = (client.clone(), limit.clone(), progress.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = limit.acquire_owned().await.expect("permit");
            let cookie = client.sign_up(n).await;
            progress.inc(1);
            cookie
        }));
    }
    let mut users = Vec::new();
    for task in tasks {
        users.push(task.await.expect("signup"));
    }
    let buyers = users.clone();
    progress.finish();
    let signup_seconds = signup_started.elapsed().as_secs_f64();

    // Sell, buy as soon as orderable, cancel every other order.
    let metrics = if args.metrics.is_empty() {
        vec![format!("{}/metrics", args.target.trim_end_matches('/'))]
    } else {
        args.metrics.clone()
    };
    let before = stages::snapshot(&http, &metrics).await;
    let total = (args.users * args.tickets_per_user) as u64;
    let progress = bar(total, "sell, buy, cancel, pay");
    let flow_started = Instant::now();
    let mut tasks = Vec::new();
    let mut ticket_ids = Vec::new();
    for n in 0..total as usize {
        let (client, limit, progress) = (client.clone(), limit.clone(), progress.clone());
        let seller = buyers[n % buyers.len()].clone();
        let buyer_index = (n + 1) % buyers.len();
        let buyer = buyers[buyer_index].clone();
        tasks.push(tokio::spawn(async move {
            let _permit = limit.acquire_owned().await.expect("permit");
            let (ticket, created) = client.sell(&seller, n).await;
            let order = client.buy(&buyer, &ticket, created).await;
            if n % 2 == 0 {
                client.cancel(&buyer, &order).await;
            } else if n % 4 == 1 {
                client.pay(&buyer, &order).await;
            }
            progress.inc(1);
            (ticket, order, buyer_index)
        }));
    }
    let mut orders = Vec::new();
    for task in tasks {
        let (ticket, order, buyer) = task.await.expect("flow");
        ticket_ids.push(ticket);
        orders.push(verify::OrderRecord { id: order, buyer });
    }
    progress.finish();
    let flow_seconds = flow_started.elapsed().as_secs_f64();
    let after = stages::snapshot(&http, &metrics).await;
    let stages = stages::between(&before, &after);
    let waits = stages::waits(&before, &after);

    // Propagation on a quiet system: one ticket at a time.
    stats.lock().expect("stats").quiet = true;
    let progress = bar(args.probes as u64, "propagation probes");
    for n in 0..args.probes {
        let (ticket, created) = client.sell(&buyers[0], total as usize + n).await;
        let order = client
            .buy(&buyers[1 % buyers.len()], &ticket, created)
            .await;
        ticket_ids.push(ticket);
        orders.push(verify::OrderRecord {
            id: order,
            buyer: 1 % buyers.len(),
        });
        progress.inc(1);
    }
    progress.finish();
    let base = client.client.endpoints().tickets.clone();
    let record = verify::Record {
        target: base.clone(),
        users: users
            .iter()
            .map(|user| verify::UserRecord {
                email: user.email.clone(),
                cookie: user.cookie.clone(),
            })
            .collect(),
        tickets: ticket_ids.clone(),
        orders,
    };
    match record.save(&args.state) {
        Ok(()) => eprintln!("what this run created is in {}", args.state.display()),
        Err(error) => eprintln!("could not write {}: {error}", args.state.display()),
    }

    // Reads: the system's GET /api/tickets/:id against a bare axum JSON handler (and the bare
    // axum + sqlx one), taking turns in rounds so that a drift of the machine's speed falls on
    // all of them alike.
    let (mut bare, bare_port) = spawn_bare(&args);
    let mut targets = vec![
        Reads::new(format!("{base}/api/tickets/{}", ticket_ids[0])),
        Reads::new(format!("http://127.0.0.1:{bare_port}/ticket")),
    ];
    if args.database_url.is_some() {
        targets.push(Reads::new(format!(
            "http://127.0.0.1:{bare_port}/pg/tickets/{}",
            ticket_ids[0]
        )));
    }
    let rounds = args.read_rounds.max(1);
    let slice = Duration::from_secs_f64(args.read_seconds as f64 / rounds as f64);
    let progress = bar(0, "reads, taking turns");
    progress.set_length(u64::MAX);
    for _ in 0..rounds {
        for target in &mut targets {
            let (reads, histogram) = hammer(
                &http,
                target.url.clone(),
                args.concurrency,
                slice,
                &progress,
            )
            .await;
            target.reads += reads;
            target.histogram.add(histogram).expect("merge");
        }
    }
    progress.finish_and_clear();
    let mut targets = targets.into_iter();
    let (ticket_reads, ticket_hist) = targets.next().expect("ours").into_parts();
    let (bare_reads, bare_hist) = targets.next().expect("bare").into_parts();
    let bare_pg = targets.next().map(Reads::into_parts);
    let _ = bare.kill();
    let _ = bare.wait();

    let stats = stats.lock().expect("stats");
    println!();
    println!(
        "{} users signed up in {signup_seconds:.2} s; {} tickets sold and bought ({} cancelled) in {flow_seconds:.2} s; at most {} requests in flight",
        args.users,
        total,
        total / 2,
        args.concurrency
    );
    println!();
    println!(
        "{:<26} {:>9} {:>10} {:>10} {:>10}",
        "route", "requests", "req/s", "p50", "p99"
    );
    for (route, h) in &stats.routes {
        let seconds = if route.starts_with("POST /api/users") {
            signup_seconds
        } else {
            flow_seconds
        };
        print_row(route, h.len(), h.len() as f64 / seconds.max(1e-6), h);
    }
    let read_rate = ticket_reads as f64 / args.read_seconds as f64;
    let bare_rate = bare_reads as f64 / args.read_seconds as f64;
    print_row(
        "GET /api/tickets/:id",
        ticket_reads,
        read_rate,
        &ticket_hist,
    );
    print_row("bare axum JSON handler", bare_reads, bare_rate, &bare_hist);
    let bare_pg_rate = bare_pg.as_ref().map(|(reads, hist)| {
        let rate = *reads as f64 / args.read_seconds as f64;
        print_row("bare axum + sqlx handler", *reads, rate, hist);
        rate
    });
    println!();
    println!(
        "GET /api/tickets/:id reaches {:.0} % of the bare handler's throughput",
        100.0 * read_rate / bare_rate.max(1.0)
    );
    if let Some(rate) = bare_pg_rate {
        println!(
            "GET /api/tickets/:id reaches {:.0} % of the bare axum + sqlx handler's throughput",
            100.0 * read_rate / rate.max(1.0)
        );
    }
    for (label, histogram) in [
        ("under the concurrent load", &stats.propagation),
        ("one ticket at a time", &stats.quiet_propagation),
    ] {
        if let Some(p) = histogram {
            println!(
                "propagation, ticket created -> orderable, {label}: p50 {}, p99 {}, max {} ({} tickets)",
                ms(p.value_at_quantile(0.5)),
                ms(p.value_at_quantile(0.99)),
                ms(p.max()),
                p.len()
            );
        }
    }
    // Where in the phase the slowest tickets were made: a burst at its start, or anywhere.
    let mut loaded = stats.loaded.clone();
    loaded.sort_by_key(|(_, took)| std::cmp::Reverse(*took));
    if !loaded.is_empty() {
        let slowest: Vec<String> = loaded
            .iter()
            .take(5)
            .map(|(created, took)| {
                format!(
                    "{} (created {} into the phase)",
                    ms(took.as_micros() as u64),
                    ms(created.saturating_duration_since(flow_started).as_micros() as u64)
                )
            })
            .collect();
        println!(
            "  the five slowest, of a phase of {:.2} s: {}",
            flow_seconds,
            slowest.join(", ")
        );
        // The same without the phase's opening burst (every seller's first ticket at once).
        let mut later = Histogram::<u64>::new(3).expect("histogram");
        for (created, took) in &stats.loaded {
            if created.saturating_duration_since(flow_started) >= Duration::from_millis(100) {
                later
                    .record(took.as_micros() as u64)
                    .expect("auto-resizing histogram");
            }
        }
        if !later.is_empty() {
            println!(
                "  tickets created 100 ms or more into the phase: p50 {}, p99 {} ({} tickets)",
                ms(later.value_at_quantile(0.5)),
                ms(later.value_at_quantile(0.99)),
                later.len()
            );
        }
    }
    println!();
    println!(
        "stages of a ticket's way to the orders service, under the concurrent load (from the services' /metrics):"
    );
    for (label, events, p50, p99) in stages {
        let seconds = |q: Option<f64>| q.map_or_else(|| "-".to_owned(), |s| ms((s * 1e6) as u64));
        println!(
            "  {label:<40} {events:>6} events  p50 {:>10}  p99 {:>10}",
            seconds(p50),
            seconds(p99)
        );
    }
    let (deliveries, waited, share) = waits;
    println!(
        "  deliveries to listeners: {deliveries}, answered \"wait\" (a version gap): {waited} ({share:.1} %)"
    );
    if let Some(p) = &stats.payment_propagation {
        println!(
            "propagation, payment 201 -> order complete, under the concurrent load: p50 {}, p99 {}, max {} ({} orders)",
            ms(p.value_at_quantile(0.5)),
            ms(p.value_at_quantile(0.99)),
            ms(p.max()),
            p.len()
        );
    }
}
