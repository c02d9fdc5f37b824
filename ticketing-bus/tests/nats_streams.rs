//! Streams: created with the configured limits when missing; an existing stream is used as its
//! operator left it, and refused when its subjects do not cover ours; a stream that would drop
//! events the listeners still need is refused.
#![cfg(feature = "nats")]

use std::time::Duration;

use async_nats::jetstream::stream;
use ticketing_bus::nats::{NatsBus, NatsBusConfig};
use ticketing_bus::{BusSettings, NatsSettings, StreamLimits};
use ticketing_test_live as live;

async fn jetstream() -> async_nats::jetstream::Context {
    let client = async_nats::connect(live::nats_url())
        .await
        .expect("NATS (scripts/test starts it)");
    async_nats::jetstream::new(client)
}

#[tokio::test]
async fn a_missing_stream_is_created_with_the_configured_limits() {
    let name = live::fresh_nats_stream("STREAMS").await;
    let config = NatsBusConfig {
        max_age: Some(Duration::from_secs(7 * 3600)),
        max_bytes: Some(1 << 30),
        max_messages: Some(1_000_000),
        dead_letter_max_age: Some(Duration::from_secs(30 * 86_400)),
        dead_letter_max_messages: Some(10_000),
        ..NatsBusConfig::isolated(live::nats_url(), &name)
    };
    let bus = NatsBus::connect(config).await.unwrap();
    assert_eq!(bus.events_max_age(), Some(Duration::from_secs(7 * 3600)));
    let js = jetstream().await;
    let events = stream_config(&js, &name).await;
    assert_eq!(events.max_age, Duration::from_secs(7 * 3600));
    assert_eq!(events.max_bytes, 1 << 30);
    assert_eq!(events.max_messages, 1_000_000);
    let dead = stream_config(&js, &format!("{name}_DLQ")).await;
    assert_eq!(dead.max_age, Duration::from_secs(30 * 86_400));
    assert_eq!(dead.max_messages, 10_000);
    bus.delete_streams().await.unwrap();
}

#[tokio::test]
async fn an_existing_stream_keeps_what_its_operator_set() {
    let name = live::fresh_nats_stream("STREAMS").await;
    let js = jetstream().await;
    js.create_stream(stream::Config {
        name: name.clone(),
        subjects: vec![format!("{}.>", name.to_lowercase())],
        max_messages: 1234,
        max_age: Duration::from_secs(9 * 3600),
        ..Default::default()
    })
    .await
    .unwrap();
    // The service asks for other limits: they apply only to streams it creates.
    let config = NatsBusConfig {
        max_messages: Some(10),
        max_age: Some(Duration::from_secs(60)),
        ..NatsBusConfig::isolated(live::nats_url(), &name)
    };
    let bus = NatsBus::connect(config).await.unwrap();
    assert_eq!(bus.events_max_age(), Some(Duration::from_secs(9 * 3600)));
    let events = stream_config(&js, &name).await;
    assert_eq!(events.max_messages, 1234);
    assert_eq!(events.max_age, Duration::from_secs(9 * 3600));
    bus.delete_streams().await.unwrap();
}

#[tokio::test]
async fn an_existing_stream_without_our_subjects_is_refused_with_what_to_do() {
    let name = live::fresh_nats_stream("STREAMS").await;
    let js = jetstream().await;
    js.create_stream(stream::Config {
        name: name.clone(),
        subjects: vec![format!("{}.orders.*", name.to_lowercase())],
        ..Default::default()
    })
    .await
    .unwrap();
    let Err(error) = NatsBus::connect(NatsBusConfig::isolated(live::nats_url(), &name)).await
    else {
        panic!("a stream without our subjects was accepted");
    };
    let error = error.to_string();
    assert!(
        error.contains(&format!("stream {name} exists with subjects"))
            && error.contains("NATS_STREAM"),
        "{error}"
    );
    let kept = stream_config(&js, &name).await;
    assert_eq!(
        kept.subjects,
        vec![format!("{}.orders.*", name.to_lowercase())],
        "left as it was"
    );
    js.delete_stream(&name).await.unwrap();
}

#[tokio::test]
async fn a_stream_that_forgets_too_soon_is_refused() {
    let name = live::fresh_nats_stream("STREAMS").await;
    let settings = BusSettings::Nats(NatsSettings {
        stream: name.clone(),
        subject_prefix: name.to_lowercase(),
        limits: StreamLimits {
            max_age_seconds: Some(600),
            ..StreamLimits::default()
        },
        ..NatsSettings::new(live::nats_url())
    });
    let bus = settings.connect().await.unwrap();
    assert_eq!(bus.max_age(), Some(Duration::from_secs(600)));
    assert!(bus.require_retention(Duration::from_secs(600), "x").is_ok());
    let error = bus
        .require_retention(Duration::from_secs(6 * 3600), "the gap horizon")
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("600s, less than the 21600s the gap horizon needs"),
        "{error}"
    );
    jetstream().await.delete_stream(&name).await.unwrap();
    let _ = jetstream().await.delete_stream(format!("{name}_DLQ")).await;
}

#[tokio::test]
async fn a_list_of_servers_connects_to_one_that_answers() {
    let name = live::fresh_nats_stream("STREAMS").await;
    // A cluster's servers, comma-separated (NATS_URL), one of them down.
    let down = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("nats://{down}, {}", live::nats_url());
    let bus = NatsBus::connect(NatsBusConfig::isolated(url, &name))
        .await
        .expect("connects through the server that answers");
    ticketing_core::Bus::health(&bus).await.unwrap();
}

/// The configuration of stream `name`, as the server has it.
async fn stream_config(js: &async_nats::jetstream::Context, name: &str) -> stream::Config {
    js.get_stream(name)
        .await
        .unwrap()
        .cached_info()
        .config
        .clone()
}
