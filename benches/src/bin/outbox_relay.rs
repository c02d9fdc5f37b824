//! Relay throughput: N events (default 100,000) committed to a PostgreSQL outbox, then the time
//! until the relay has published all of them to NATS JetStream and forgotten them, against
//! publishing the same events straight through the bus with the same number in flight (the
//! relay's window, `RelayOptions::in_flight`), in one run.
//!
//! ```text
//! DATABASE_URL=postgres://postgres@127.0.0.1/postgres NATS_URL=nats://127.0.0.1:4222 \
//!   cargo run --release -p ticketing-benches --bin outbox_relay -- [events]
//! ```
#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use ticketing_bus::{BusSettings, NatsSettings};
use ticketing_core::outbox::{Outbox, RelayOptions, spawn_relay};
use ticketing_core::{Id, OutgoingMessage};
use ticketing_store::postgres::PgDatabase;
use tokio_util::sync::CancellationToken;

const PAYLOAD: &str = r#"{"id":"6b0baec7dad36745626a559a","version":0,"title":"a concert ticket","price":20,"userId":"6b0baec7dad36745626a559b"}"#;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let events: i64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let database_url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres:postgres@127.0.0.1:5432/postgres".into());
    let nats_url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let run = Id::new().to_string();
    let stream = format!("RELAYBENCH_{run}").to_uppercase();
    let settings = BusSettings::Nats(NatsSettings {
        url: nats_url.clone(),
        stream: stream.clone(),
        subject_prefix: format!("relaybench{run}"),
        ..NatsSettings::new(String::new())
    });
    let bus = settings.connect().await?.as_dyn();
    let schema = format!("relaybench_{run}");
    let db = PgDatabase::connect_schema(&database_url, &schema).await?;
    db.migrate_ticketing().await?;
    // `RELAY_BATCH` overrides the events read per round (default: the relay's own).
    let options = RelayOptions {
        batch: std::env::var("RELAY_BATCH")
            .ok()
            .and_then(|b| b.parse().ok())
            .unwrap_or(RelayOptions::default().batch),
        ..RelayOptions::default()
    };

    // The outbox path: commit N events (one per record, as N new tickets), then relay them.
    let started = Instant::now();
    sqlx::query(
        "INSERT INTO outbox (key, subject, payload, headers, message_id) \
         SELECT 'ticket:' || n, 'ticket:created', convert_to($2, 'UTF8'), \
                '{\"content-type\":\"application/json\"}', $3 || ':outbox:' || n \
         FROM generate_series(1, $1) AS n",
    )
    .bind(events)
    .bind(PAYLOAD)
    .bind(&run)
    .execute(db.pool())
    .await?;
    println!(
        "committed {events} events to the outbox in {:.2?}",
        started.elapsed()
    );
    let outbox: Arc<dyn Outbox> = Arc::new(db.outbox());
    let started = Instant::now();
    let relay = spawn_relay(
        outbox.clone(),
        bus.clone(),
        "bench",
        options,
        CancellationToken::new(),
    );
    loop {
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
            .fetch_one(db.pool())
            .await?;
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let relayed = started.elapsed();
    relay.stop().await;

    // The direct path: the same events through the bus, as many in flight as the relay's window.
    let started = Instant::now();
    let published = futures::stream::iter(0..events)
        .map(|n| {
            let bus = bus.clone();
            let message = OutgoingMessage::new("ticket:created", PAYLOAD)
                .with_header("content-type", "application/json")
                .with_message_id(format!("{run}:direct:{n}"));
            async move { bus.publish(message).await }
        })
        .buffer_unordered(options.in_flight)
        .filter(|r| futures::future::ready(r.is_ok()))
        .count()
        .await;
    let direct = started.elapsed();

    let rate = |d: Duration| events as f64 / d.as_secs_f64();
    println!(
        "relay:   {events} events published and confirmed in {relayed:.2?} ({:.0}/s)",
        rate(relayed)
    );
    println!(
        "direct:  {published} events published and confirmed in {direct:.2?} ({:.0}/s), {} in flight",
        rate(direct),
        options.in_flight
    );
    println!(
        "relay throughput = {:.0}% of direct publishing",
        100.0 * rate(relayed) / rate(direct)
    );

    // Clean up the schema and the stream.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA \"{schema}\" CASCADE"
    )))
    .execute(db.pool())
    .await?;
    let client = async_nats::connect(&nats_url).await?;
    let _ = async_nats::jetstream::new(client)
        .delete_stream(&stream)
        .await;
    Ok(())
}
