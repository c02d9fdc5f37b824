//! In-memory bus throughput: publish → listener (decode, handle) → ack, against bare tokio
//! channels moving the same payloads to consumers that decode them.
//!
//! `cargo bench -p ticketing-benches --bench bus`

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ticketing_benches::{bus_round_trip, encoded_events, mpsc_round_trip};
use ticketing_bus::memory::InMemoryBus;
use ticketing_core::ListenerOptions;

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
}

criterion_group!(benches, throughput);
criterion_main!(benches);
