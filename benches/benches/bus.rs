//! In-memory bus throughput: publish → listener (decode, handle) → ack, against bare tokio
//! channels moving the same payloads to consumers that decode them; and the two halves on
//! their own (publishing into a bus nobody reads; a listener draining a bus filled
//! beforehand), to tell the halves' costs from what running them at once adds.
//!
//! `cargo bench -p ticketing-benches --bench bus`

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ticketing_benches::{
    BenchEvent, Countdown, CountingListener, bus_round_trip, encoded_events, mpsc_round_trip,
};
use ticketing_bus::memory::InMemoryBus;
use ticketing_core::{Event, ListenerOptions, OutgoingMessage, spawn_listener};

/// Publishes `events` into `bus`, each on the bench subject.
async fn publish_all(bus: &InMemoryBus, events: &[bytes::Bytes]) {
    let bus = bus.as_dyn();
    for payload in events {
        bus.publish(OutgoingMessage::new(BenchEvent::SUBJECT, payload.clone()))
            .await
            .expect("publish");
    }
}

/// A listener drains `bus` of `count` events.
async fn consume_all(bus: &InMemoryBus, count: u64) {
    let countdown = Countdown::new(count);
    let listener = CountingListener {
        group: "group-0".into(),
        countdown: countdown.clone(),
        options: ListenerOptions::default(),
    };
    let handle = spawn_listener(&bus.as_dyn(), listener)
        .await
        .expect("listener");
    countdown.wait().await;
    handle.stop().await;
}

const MESSAGES: u64 = 100_000;

fn throughput(c: &mut Criterion) {
    let runtime = ticketing_benches::runtime();
    let events = encoded_events(MESSAGES);
    let mut group = c.benchmark_group("publish_consume_ack_100k");
    group.sample_size(10);
    for groups in [1usize, 4] {
        group.throughput(criterion::Throughput::Elements(MESSAGES * groups as u64));
        group.bench_with_input(
            BenchmarkId::new("bare_mpsc", groups),
            &groups,
            |b, &groups| {
                b.to_async(&runtime)
                    .iter(|| mpsc_round_trip(&events, groups));
            },
        );
        group.bench_with_input(
            BenchmarkId::new("in_memory_bus", groups),
            &groups,
            |b, &groups| {
                b.to_async(&runtime).iter(|| {
                    bus_round_trip(
                        InMemoryBus::new().as_dyn(),
                        &events,
                        groups,
                        ListenerOptions::default(),
                    )
                });
            },
        );
    }
    let _ = Throughput::Elements(0);
    group.finish();

    let mut halves = c.benchmark_group("halves_100k");
    halves.sample_size(10);
    halves.throughput(Throughput::Elements(MESSAGES));
    halves.bench_function("publish_only", |b| {
        b.to_async(&runtime)
            .iter(|| async { publish_all(&InMemoryBus::new(), &events).await });
    });
    halves.bench_function("consume_only", |b| {
        // Filled before the clock starts, for each iteration.
        b.to_async(&runtime).iter_custom(|iterations| {
            let events = &events;
            async move {
                let mut took = Duration::ZERO;
                for _ in 0..iterations {
                    let bus = InMemoryBus::new();
                    publish_all(&bus, events).await;
                    let started = Instant::now();
                    consume_all(&bus, MESSAGES).await;
                    took += started.elapsed();
                    // The bus, and the messages it retains, are freed after the clock stops.
                    drop(bus);
                }
                took
            }
        });
    });
    halves.finish();
}

criterion_group!(benches, throughput);
criterion_main!(benches);
