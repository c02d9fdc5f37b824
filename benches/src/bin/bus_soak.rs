//! Peak memory of the in-memory bus over a long run: publishes N messages (default 10 million,
//! each with a message id) to one listening queue group and reports throughput and peak RSS.
//! Retention and the de-duplication id cap keep memory bounded; the publisher keeps its
//! backlog under half the retention limit, so every message is handled.
//!
//! `cargo run --release -p ticketing-benches --bin bus_soak -- [messages] [retained]`
#![allow(clippy::print_stdout)]

use std::time::Instant;

use ticketing_benches::{BenchEvent, Countdown, CountingListener, encoded_events, peak_rss_kib};
use ticketing_bus::memory::{InMemoryBus, InMemoryBusConfig};
use ticketing_core::{Bus, Event, ListenerOptions, OutgoingMessage, spawn_listener};

fn main() {
    let mut args = std::env::args().skip(1);
    let total: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000_000);
    let retained: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let runtime = ticketing_benches::runtime();
    runtime.block_on(async move {
        let bus = InMemoryBus::with_config(InMemoryBusConfig {
            max_messages_per_subject: retained,
            max_duplicate_ids: retained,
            ..InMemoryBusConfig::default()
        });
        let dyn_bus = bus.as_dyn();
        let countdown = Countdown::new(total);
        let listener = CountingListener {
            group: "soak".into(),
            countdown: countdown.clone(),
            options: ListenerOptions::default(),
        };
        let handle = spawn_listener(&dyn_bus, listener).await.expect("listener");
        let payloads = encoded_events(1_000);
        let baseline = peak_rss_kib().unwrap_or(0);
        let started = Instant::now();
        for n in 0..total {
            let payload = payloads[(n % 1_000) as usize].clone();
            let message = OutgoingMessage::new(BenchEvent::SUBJECT, payload).with_message_id(format!("soak-{n}"));
            bus.publish(message).await.expect("publish");
            if n % 1_000_000 == 999_999 {
                println!(
                    "published {:>9}  handled {:>9}  peak RSS {:>7} KiB",
                    n + 1,
                    countdown.handled(),
                    peak_rss_kib().unwrap_or(0)
                );
            }
            // Keep the backlog under the retention limit, so nothing is lost: a publisher
            // that outruns its consumers by more than retention loses messages, as on
            // JetStream with limits.
            if n % 1024 == 0 {
                while n - countdown.handled().min(n) > (retained as u64) / 2 {
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                }
            }
        }
        let published_in = started.elapsed();
        countdown.wait().await;
        let elapsed = started.elapsed();
        handle.stop().await;
        let handled = countdown.handled();
        println!(
            "{total} messages published in {:.2?} ({:.0} msg/s); {handled} handled in {:.2?} ({:.0} msg/s)",
            published_in,
            total as f64 / published_in.as_secs_f64(),
            elapsed,
            handled as f64 / elapsed.as_secs_f64()
        );
        println!(
            "retained {} of at most {retained}; peak RSS {} KiB (before publishing: {baseline} KiB)",
            bus.messages(BenchEvent::SUBJECT).len(),
            peak_rss_kib().unwrap_or(0)
        );
        assert!(bus.messages(BenchEvent::SUBJECT).len() <= retained);
        assert_eq!(handled, total, "messages were lost");
    });
}
