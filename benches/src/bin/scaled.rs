//! The system scaled out, under the load generator: every service as processes of its own (the
//! built binaries beside this one), the tickets and orders services `--processes` times each,
//! behind the round-robin ingress stand-in, on NATS and a fresh PostgreSQL database. It runs
//! the load generator against the ingress with every process's `/metrics`, so its report (the
//! share of deliveries answered "wait", the stages of propagation) counts all of them.
//!
//! ```text
//! cargo build --release -p ticketing-benches -p ticketing-auth -p ticketing-tickets \
//!   -p ticketing-orders -p ticketing-payments -p ticketing-expiration --bins
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres target/release/scaled --processes 3
//! ```
//!
//! By default it runs twice, one run after the other, on a stream of `--partitions` partitions:
//! the listeners in arrival order, then per key (`LISTENER_ORDER=key`), on the current
//! nats-server (`NATS_URL_CURRENT`); `--arrival-without-partitions` runs arrival order on a
//! stream without partitions.
//!
//! Arguments after `--` go to the load generator.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use clap::Parser;
use ticketing_test_live::ingress::{self, Ports};
use ticketing_test_live::process::{free_port, wait_for_port};
use tokio::process::{Child, Command};

#[derive(Debug, Parser)]
#[command(
    about = "Run every service as processes of its own behind a round-robin ingress and load it"
)]
struct Args {
    /// Processes of the tickets and of the orders service.
    #[arg(long, default_value_t = 3)]
    processes: usize,
    /// Connections of each process's PostgreSQL pool.
    #[arg(long, default_value_t = 5)]
    max_connections: u32,
    /// The listeners' order: `arrival`, `key` (per-key ordered listeners on a partitioned
    /// stream), or `both`: one run of each, one after the other, each on a database and stream
    /// of its own.
    #[arg(long, value_enum, default_value_t = Order::Both)]
    order: Order,
    /// Partitions of the stream, in both runs: the runs differ only in the listeners' order.
    #[arg(long, default_value_t = 16)]
    partitions: u32,
    /// The `arrival` run on a stream without partitions (the layout of a system that never
    /// turned per-key order on), instead of the `key` run's.
    #[arg(long)]
    arrival_without_partitions: bool,
    /// The NATS server (2.10 or later for `key`); default `NATS_URL_CURRENT`, the current
    /// release `scripts/test` starts.
    #[arg(long)]
    nats_url: Option<String>,
    /// Where the service binaries and `loadgen` are (default: beside this binary).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// `RUST_LOG` of the services.
    #[arg(long, default_value = "warn")]
    log: String,
    /// Arguments of the load generator.
    #[arg(last = true)]
    loadgen: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Order {
    Arrival,
    Key,
    Both,
}

const JWT_KEY: &str = "scaled-run-secret-key-of-32-bytes-or-more";

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let bins = args.bin_dir.clone().unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(PathBuf::from))
            .unwrap_or_default()
    });
    for bin in ingress::SERVICES.iter().chain(&["loadgen"]) {
        if !bins.join(bin).is_file() {
            eprintln!(
                "{} is missing: build the service binaries and the load generator first (see --help)",
                bins.join(bin).display()
            );
            return std::process::ExitCode::FAILURE;
        }
    }
    let runs: &[&str] = match args.order {
        Order::Arrival => &["arrival"],
        Order::Key => &["key"],
        Order::Both => &["arrival", "key"],
    };
    let mut ok = true;
    for order in runs {
        println!("=== LISTENER_ORDER={order}");
        ok &= run(&args, &bins, order).await;
    }
    if ok {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}

/// One run: the processes on a database and a stream of their own (what runs of more than an
/// hour ago left is removed; both are removed at the end), the load generator against them.
async fn run(args: &Args, bins: &std::path::Path, order: &str) -> bool {
    let nats = args
        .nats_url
        .clone()
        .unwrap_or_else(ticketing_test_live::current_nats_url);
    let database = ticketing_test_live::fresh_pg_database("scaled").await;
    let stream = ticketing_test_live::fresh_nats_stream_at(&nats, "scaled").await;
    let prefix = stream.to_lowercase();
    let logs = std::env::temp_dir().join(&prefix);
    std::fs::create_dir_all(&logs).expect("a log directory");
    let replicated = args.processes.max(1);
    let ports = Ports::free_each(|service| match service {
        "tickets" | "orders" => replicated,
        _ => 1,
    });
    let mut children: Vec<Child> = Vec::new();
    for (service, index, port) in ports.all() {
        let log =
            std::fs::File::create(logs.join(format!("{service}-{index}.log"))).expect("a log file");
        let mut command = Command::new(bins.join(service));
        // Only the settings below: a MONGO_URI or STORE of the caller's shell would make the
        // choice of store ambiguous, and the service refuse to start.
        command
            .env_remove("MONGO_URI")
            .env_remove("STORE")
            .env_remove("BUS")
            .env("PORT", port.to_string())
            .env("HOST", "127.0.0.1")
            .env("JWT_KEY", JWT_KEY)
            .env("NATS_URL", &nats)
            .env("NATS_STREAM", &stream)
            .env("NATS_SUBJECT_PREFIX", &prefix)
            .env("LISTENER_ORDER", order)
            .env("DATABASE_URL", &database)
            .env("DATABASE_MAX_CONNECTIONS", args.max_connections.to_string())
            .env("PAYMENT_PROVIDER", "fake")
            .env("RUST_LOG", &args.log)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("a log file"))
            .stderr(log)
            .kill_on_drop(true);
        if order == "key" || !args.arrival_without_partitions {
            command.env("NATS_PARTITIONS", args.partitions.to_string());
        }
        children.push(command.spawn().expect("a service process"));
    }
    for (service, _, port) in ports.all() {
        wait_for_port(port, service, Duration::from_secs(60)).await;
    }
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", free_port()))
        .await
        .expect("the ingress's port");
    let target = format!("http://{}", listener.local_addr().expect("an address"));
    let ingress = tokio::spawn(ingress::serve(
        listener,
        ports.clone(),
        Duration::from_secs(30),
    ));
    println!(
        "{} processes ({replicated} of tickets and of orders) behind {target}; logs in {}",
        children.len(),
        logs.display()
    );
    let mut loadgen = Command::new(bins.join("loadgen"));
    loadgen.arg("--target").arg(&target);
    for (_, _, port) in ports.all() {
        loadgen
            .arg("--metrics")
            .arg(format!("http://127.0.0.1:{port}/metrics"));
    }
    let status = loadgen
        .args(&args.loadgen)
        .status()
        .await
        .expect("the load generator");
    ingress.abort();
    for child in &mut children {
        let _ = child.kill().await;
    }
    clean_up(&nats, &database, &stream).await;
    status.success()
}

/// Removes the run's database and streams (its events and dead letters).
async fn clean_up(nats: &str, database: &str, stream: &str) {
    if let Ok(client) = async_nats::connect(nats).await {
        let js = async_nats::jetstream::new(client);
        // The events, the dead letters and the ordered groups' partition leases.
        for name in [
            stream.to_owned(),
            format!("{stream}_DLQ"),
            format!("KV_{stream}_LEASES"),
        ] {
            let _ = js.delete_stream(&name).await;
        }
    }
    let name = database.rsplit('/').next().unwrap_or_default();
    let name = name.split('?').next().unwrap_or_default();
    if let Ok(admin) = sqlx::PgPool::connect(&ticketing_test_live::database_url()).await {
        let drop = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
        let _ = sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&admin).await;
    }
}
