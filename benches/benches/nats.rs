//! NATS JetStream throughput, `NatsBus` against raw async-nats on the same server, stream
//! layout and consumer settings (`NATS_URL`, default `nats://127.0.0.1:4222`):
//!
//! - publish: 100,000 messages, at most 256 PubAcks outstanding;
//! - consume: 100,000 stored messages pulled (batches of 128) and acked one by one, through a
//!   listener (decode, handle, ack) or a raw pull consumer (decode, ack);
//! - the envelope: 100,000 events encoded and published through the bus, each with its message
//!   id, with the CloudEvents headers (`Publisher::encode`) and without them;
//! - the envelope's floor: the same payloads published by raw async-nats with the same headers,
//!   made before the clock starts (`raw_headers_publish`): what the header bytes cost on the
//!   wire and in the server, whoever sends them.
//!
//! `cargo bench -p ticketing-benches --bench nats`

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use ticketing_benches::{BenchEvent, Countdown, CountingListener, encoded_events};
use ticketing_bus::nats::{NatsBus, NatsBusConfig};
use ticketing_core::bus::header;
use ticketing_core::{Bus, Event, Id, ListenerOptions, OutgoingMessage, Publisher, spawn_listener};

const MESSAGES: u64 = 100_000;
const WINDOW: usize = 256;
const BATCH: usize = 128;

fn url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

async fn fresh_bus() -> NatsBus {
    let name = format!("BENCH_{}", Id::new()).to_uppercase();
    NatsBus::connect(NatsBusConfig::isolated(url(), &name))
        .await
        .expect("NATS must be running")
}

async fn publish_bus(bus: &NatsBus, events: &[bytes::Bytes]) {
    let mut in_flight: FuturesUnordered<_> = FuturesUnordered::new();
    for payload in events {
        if in_flight.len() >= WINDOW {
            let ack: Result<ticketing_core::PublishAck, _> =
                in_flight.next().await.expect("pending");
            ack.expect("publish");
        }
        in_flight.push(bus.publish(OutgoingMessage::new(BenchEvent::SUBJECT, payload.clone())));
    }
    while let Some(ack) = in_flight.next().await {
        ack.expect("publish");
    }
}

/// Encodes each event (with the envelope or without) and publishes it, 256 at most outstanding.
async fn publish_events(bus: &NatsBus, events: &[BenchEvent], envelope: bool) {
    let mut in_flight: FuturesUnordered<_> = FuturesUnordered::new();
    for event in events {
        if in_flight.len() >= WINDOW {
            let ack: Result<ticketing_core::PublishAck, _> =
                in_flight.next().await.expect("pending");
            ack.expect("publish");
        }
        let message = if envelope {
            Publisher::<BenchEvent>::encode(event).expect("encode")
        } else {
            OutgoingMessage::new(
                BenchEvent::SUBJECT,
                serde_json::to_vec(event).expect("encode"),
            )
            .with_header(header::CONTENT_TYPE, "application/json")
            .with_header(header::MESSAGE_ID, event.message_id())
            .with_message_id(event.message_id())
        };
        in_flight.push(bus.publish(message));
    }
    while let Some(ack) = in_flight.next().await {
        ack.expect("publish");
    }
}

/// The headers of each event as the bus would send them, made before the clock starts: the
/// old two (`content-type`, `ticketing-msg-id`) or the envelope's seven, with `Nats-Msg-Id`.
fn raw_headers(events: &[BenchEvent], envelope: bool) -> Vec<async_nats::HeaderMap> {
    events
        .iter()
        .map(|event| {
            let id = event.message_id();
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("Nats-Msg-Id", id.as_str());
            if envelope {
                let message = Publisher::<BenchEvent>::encode(event).expect("encode");
                for (name, value) in &message.headers {
                    headers.insert(name.as_str(), value.as_str());
                }
            } else {
                headers.insert(header::CONTENT_TYPE, "application/json");
                headers.insert(header::MESSAGE_ID, id.as_str());
            }
            headers
        })
        .collect()
}

/// Raw async-nats publishing the payloads with `WINDOW` acks awaited at once; with `headers`
/// made beforehand, each with its own (what the headers cost on the wire and in the server,
/// without the SDK's encoding), else as plain messages.
async fn publish_raw(
    bus: &NatsBus,
    events: &[bytes::Bytes],
    headers: Option<Vec<async_nats::HeaderMap>>,
) {
    let js = async_nats::jetstream::context::ContextBuilder::new()
        .max_ack_inflight(4096)
        .backpressure_on_inflight(true)
        .build(bus.client().clone());
    let subject = format!("{}.{}", bus.config().subject_prefix, BenchEvent::SUBJECT);
    let mut headers = headers.map(Vec::into_iter);
    let mut in_flight = FuturesUnordered::new();
    for payload in events {
        if in_flight.len() >= WINDOW {
            let ack: Result<_, async_nats::jetstream::context::PublishError> =
                in_flight.next().await.expect("pending");
            ack.expect("publish");
        }
        let ack = match headers.as_mut().and_then(Iterator::next) {
            Some(headers) => {
                js.publish_with_headers(subject.clone(), headers, payload.clone())
                    .await
            }
            None => js.publish(subject.clone(), payload.clone()).await,
        };
        in_flight.push(std::future::IntoFuture::into_future(ack.expect("publish")));
    }
    while let Some(ack) = in_flight.next().await {
        ack.expect("publish");
    }
}

async fn consume_bus(bus: &NatsBus) {
    let countdown = Countdown::new(MESSAGES);
    let listener = CountingListener {
        group: "bench".into(),
        countdown: countdown.clone(),
        options: ListenerOptions {
            prefetch: BATCH,
            ..ListenerOptions::default()
        },
    };
    let handle = spawn_listener(&bus.as_dyn(), listener)
        .await
        .expect("listener");
    countdown.wait().await;
    handle.stop().await;
}

async fn consume_raw(bus: &NatsBus) {
    use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
    let js = async_nats::jetstream::new(bus.client().clone());
    let stream = js.get_stream(&bus.config().stream).await.expect("stream");
    let consumer = stream
        .create_consumer(pull::Config {
            durable_name: Some("raw".into()),
            filter_subject: format!("{}.{}", bus.config().subject_prefix, BenchEvent::SUBJECT),
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::Explicit,
            ack_wait: Duration::from_secs(5),
            max_deliver: 11,
            max_ack_pending: 1000,
            ..Default::default()
        })
        .await
        .expect("consumer");
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(BATCH)
        .messages()
        .await
        .expect("messages");
    let mut handled = 0;
    while handled < MESSAGES {
        let message = messages.next().await.expect("open").expect("message");
        let event: BenchEvent = serde_json::from_slice(&message.payload).expect("decode");
        std::hint::black_box(event);
        message.ack().await.expect("ack");
        handled += 1;
    }
}

/// `iterations` runs, each on a fresh bus whose streams are deleted afterwards: `prepare`
/// (not timed), then `measured` on what it made (timed); the total of the timed parts.
async fn timed<T>(
    iterations: u64,
    prepare: impl AsyncFn(&NatsBus) -> T,
    measured: impl AsyncFn(&NatsBus, T),
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iterations {
        let bus = fresh_bus().await;
        let input = prepare(&bus).await;
        let started = Instant::now();
        measured(&bus, input).await;
        total += started.elapsed();
        bus.delete_streams().await.expect("cleanup");
    }
    total
}

fn throughput(c: &mut Criterion) {
    let runtime = ticketing_benches::runtime();
    let events = encoded_events(MESSAGES);
    let mut group = c.benchmark_group("nats_100k");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(MESSAGES));
    for which in ["raw_async_nats", "nats_bus"] {
        group.bench_function(BenchmarkId::new("publish", which), |b| {
            b.to_async(&runtime).iter_custom(|iterations| {
                timed(
                    iterations,
                    async |_| (),
                    async |bus, ()| match which {
                        "raw_async_nats" => publish_raw(bus, &events, None).await,
                        _ => publish_bus(bus, &events).await,
                    },
                )
            });
        });
        group.bench_function(BenchmarkId::new("consume_ack", which), |b| {
            b.to_async(&runtime).iter_custom(|iterations| {
                timed(
                    iterations,
                    async |bus| publish_raw(bus, &events, None).await,
                    async |bus, ()| match which {
                        "raw_async_nats" => consume_raw(bus).await,
                        _ => consume_bus(bus).await,
                    },
                )
            });
        });
    }
    let structs: Vec<BenchEvent> = (0..MESSAGES)
        .map(|n| BenchEvent {
            n,
            title: "A concert in the park".to_owned(),
            price: 2_000,
            user_id: "5f1a2b3c4d5e6f7a8b9c0d1e".to_owned(),
        })
        .collect();
    for (which, envelope) in [("without_envelope", false), ("with_envelope", true)] {
        group.bench_function(BenchmarkId::new("encode_publish", which), |b| {
            b.to_async(&runtime).iter_custom(|iterations| {
                timed(
                    iterations,
                    async |_| (),
                    async |bus, ()| {
                        publish_events(bus, &structs, envelope).await;
                    },
                )
            });
        });
        group.bench_function(BenchmarkId::new("raw_headers_publish", which), |b| {
            b.to_async(&runtime).iter_custom(|iterations| {
                timed(
                    iterations,
                    async |_| raw_headers(&structs, envelope),
                    async |bus, headers| publish_raw(bus, &events, Some(headers)).await,
                )
            });
        });
    }
    group.finish();
}

criterion_group!(benches, throughput);
criterion_main!(benches);
