//! Connection loss: a nats-server of the test's own (random port, own store directory) is
//! stopped and restarted in the middle of a stream. Publishers and members carry on once it is
//! back; nothing confirmed is lost and nothing is stored twice. After a clean restart nothing
//! acked is delivered again. After a crash (SIGKILL) JetStream may redeliver messages it had
//! delivered in its last moments (it writes consumer state asynchronously), acked or not; the
//! versioned `find_by_event` contract makes handlers absorb such redeliveries.
#![cfg(feature = "nats")]
#![allow(clippy::print_stderr)]

mod support;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ticketing_bus::nats::{NatsBus, NatsBusConfig, NatsStorage};
use ticketing_core::{OutgoingMessage, SubscribeOptions};
use ticketing_test_live::process::NatsServer;

const MESSAGES: u64 = 2_000;

struct Outcome {
    lost: Vec<u64>,
    replayed: Vec<u64>,
    received_before_stop: HashSet<u64>,
    publish_retries: u32,
    published_before_stop: u64,
    stored: u64,
}

async fn restart_mid_stream(signal: &str) -> Outcome {
    let store = std::env::temp_dir().join(format!(
        "ticketing-nats-restart-{}",
        ticketing_core::Id::new()
    ));
    std::fs::create_dir_all(&store).unwrap();
    let mut server = NatsServer::start(&store, None).await;
    let port = server.port();
    let config = NatsBusConfig {
        storage: NatsStorage::File,
        confirm_acks: true,
        request_timeout: Duration::from_secs(2),
        ..NatsBusConfig::isolated(format!("nats://127.0.0.1:{port}"), "RESTART")
    };
    let bus = NatsBus::connect(config).await.expect("connect");
    let dyn_bus = bus.as_dyn();

    let acked: Arc<Mutex<HashSet<u64>>> = Arc::default();
    let replayed: Arc<Mutex<Vec<u64>>> = Arc::default();
    let received: Arc<Mutex<HashSet<u64>>> = Arc::default();
    // An ack wait well past the outage: deliveries buffered in the member during the restart
    // are acked before the server would redeliver them, so a replay means a forgotten ack.
    let options = SubscribeOptions {
        ack_wait: Duration::from_secs(10),
        max_deliver: 100,
        ..SubscribeOptions::default()
    };
    let mut member = dyn_bus
        .subscribe("restart:event", "g", options)
        .await
        .expect("subscribe");
    let consumer = {
        let (acked, replayed, received) = (acked.clone(), replayed.clone(), received.clone());
        tokio::spawn(async move {
            while acked.lock().unwrap().len() < MESSAGES as usize {
                let delivery =
                    match tokio::time::timeout(Duration::from_secs(60), member.next()).await {
                        Ok(Some(Ok(d))) => d,
                        Ok(Some(Err(_))) => {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                        Ok(None) | Err(_) => break,
                    };
                let n: u64 = std::str::from_utf8(delivery.payload())
                    .unwrap()
                    .parse()
                    .unwrap();
                received.lock().unwrap().insert(n);
                if acked.lock().unwrap().contains(&n) {
                    replayed.lock().unwrap().push(n);
                }
                // Confirmed acks: Ok means the server recorded it.
                if delivery.ack().await.is_ok() {
                    acked.lock().unwrap().insert(n);
                }
            }
        })
    };

    let published = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let publisher = {
        let bus = dyn_bus.clone();
        let published = published.clone();
        tokio::spawn(async move {
            let mut retries = 0u32;
            for n in 0..MESSAGES {
                let message = || {
                    OutgoingMessage::new("restart:event", n.to_string())
                        .with_message_id(format!("m-{n}"))
                };
                while bus.publish(message()).await.is_err() {
                    retries += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                published.store(n + 1, std::sync::atomic::Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            retries
        })
    };

    // Restart the server once a quarter of the stream has been consumed.
    ticketing_test_live::wait_until(Duration::from_secs(30), || {
        acked.lock().unwrap().len() >= MESSAGES as usize / 4
    })
    .await;
    let received_before_stop = received.lock().unwrap().clone();
    let published_before_stop = published.load(std::sync::atomic::Ordering::SeqCst);
    server.stop_with(signal).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _server = NatsServer::start_on(port, &store, None).await;

    let publish_retries = publisher.await.unwrap();
    consumer.await.unwrap();
    let acked = acked.lock().unwrap().clone();
    let js = async_nats::jetstream::new(bus.client().clone());
    let stored = js
        .get_stream("RESTART")
        .await
        .unwrap()
        .get_info()
        .await
        .unwrap()
        .state
        .messages;
    bus.delete_streams().await.unwrap();
    let _ = std::fs::remove_dir_all(&store);
    let replayed = replayed.lock().unwrap().clone();
    Outcome {
        lost: (0..MESSAGES).filter(|n| !acked.contains(n)).collect(),
        replayed,
        received_before_stop,
        publish_retries,
        published_before_stop,
        stored,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_server_restart_mid_stream_loses_nothing_and_replays_nothing_acked() {
    let outcome = restart_mid_stream("-TERM").await;
    assert_eq!(
        outcome.lost,
        Vec::<u64>::new(),
        "confirmed messages were lost"
    );
    assert_eq!(
        outcome.replayed,
        Vec::<u64>::new(),
        "acked messages were delivered again"
    );
    assert!(
        outcome.published_before_stop < MESSAGES,
        "the stream was over before the restart"
    );
    eprintln!(
        "publishes retried across the restart: {}",
        outcome.publish_retries
    );
    assert_eq!(
        outcome.stored, MESSAGES,
        "a retried publish was stored twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_crash_mid_stream_loses_nothing_and_replays_only_messages_delivered_before_it() {
    let outcome = restart_mid_stream("-KILL").await;
    assert_eq!(
        outcome.lost,
        Vec::<u64>::new(),
        "confirmed messages were lost"
    );
    assert!(
        outcome.published_before_stop < MESSAGES,
        "the stream was over before the crash"
    );
    eprintln!(
        "publishes retried across the crash: {}",
        outcome.publish_retries
    );
    assert_eq!(
        outcome.stored, MESSAGES,
        "a retried publish was stored twice"
    );
    // Messages the server had delivered when it died (handled by the member, or still in its
    // prefetch buffer) may come again; nothing delivered after the restart may.
    let last_delivered = outcome
        .received_before_stop
        .iter()
        .max()
        .copied()
        .unwrap_or(0)
        + SubscribeOptions::default().prefetch as u64;
    let late: Vec<u64> = outcome
        .replayed
        .iter()
        .copied()
        .filter(|n| *n > last_delivered)
        .collect();
    assert_eq!(
        late,
        Vec::<u64>::new(),
        "messages delivered after the restart were delivered again"
    );
    eprintln!("redelivered after the crash: {:?}", outcome.replayed);
}
