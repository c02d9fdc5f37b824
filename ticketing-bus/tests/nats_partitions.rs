//! Partitions of the events stream (per-key ordered groups): the server puts each key in the
//! partition `ticketing_core::partition` computes (so the in-memory bus orders as NATS does); a
//! stream made without partitions gets them, and what it held before is still delivered; an
//! older server refuses them clearly.
#![cfg(feature = "nats")]

use std::collections::BTreeSet;
use std::time::Duration;

use ticketing_bus::nats::{NatsBus, NatsBusConfig, NatsStorage};
use ticketing_core::{Bus, BusError, OutgoingMessage, SubscribeOptions, partition};
use ticketing_test_live as live;

fn keyed(subject: &str, key: &str) -> OutgoingMessage {
    OutgoingMessage::new(subject, "{}").with_header(partition::KEY, key)
}

async fn partitioned(url: &str, name: &str, partitions: u32) -> Result<NatsBus, BusError> {
    NatsBus::connect(NatsBusConfig {
        storage: NatsStorage::Memory,
        partitions: Some(partitions),
        ..NatsBusConfig::isolated(url, name)
    })
    .await
}

#[tokio::test]
async fn the_server_puts_each_key_in_the_partition_the_sdk_computes() {
    let url = live::current_nats_url();
    let name = live::fresh_nats_stream_at(&url, "PARTS").await;
    let bus = partitioned(&url, &name, 7).await.expect("partitioned bus");
    assert_eq!(bus.partitions(), Some(7));
    // Record ids, a key with characters a subject token cannot hold, and keys spread wide.
    let mut keys: Vec<String> = (0..40).map(|i| format!("{:024x}", i * 7919)).collect();
    keys.push("a key.with*odd>chars".into());
    for key in &keys {
        bus.publish(keyed("thing:made", key))
            .await
            .expect("publish");
    }
    let js = async_nats::jetstream::new(bus.client().clone());
    let events = js.get_stream(&name).await.expect("stream");
    let prefix = name.to_lowercase();
    let mut partitions_seen = BTreeSet::new();
    for (sequence, key) in (1u64..).zip(&keys) {
        let raw = events.get_raw_message(sequence).await.expect("stored");
        let token = partition::token(key);
        let expected = format!(
            "{prefix}._k.thing:made.{}.{token}",
            partition::partition(key, 7)
        );
        assert_eq!(raw.subject.as_str(), expected, "key {key:?}");
        partitions_seen.insert(partition::partition(key, 7));
    }
    assert_eq!(partitions_seen.len(), 7, "the keys reach every partition");
    bus.delete_streams().await.expect("cleanup");
}

#[tokio::test]
async fn a_stream_made_without_partitions_gets_them_and_its_earlier_events_still_arrive() {
    let url = live::current_nats_url();
    let name = live::fresh_nats_stream_at(&url, "PARTS").await;
    let plain = NatsBus::connect(NatsBusConfig {
        storage: NatsStorage::Memory,
        ..NatsBusConfig::isolated(&url, &name)
    })
    .await
    .expect("plain bus");
    assert_eq!(plain.partitions(), None);
    let refused = plain
        .subscribe_ordered(&["thing:made"], "g", SubscribeOptions::default())
        .await
        .err()
        .expect("no ordered group without partitions");
    assert!(
        matches!(&refused, BusError::Unsupported(why) if why.contains("NATS_PARTITIONS")),
        "{refused}"
    );
    plain
        .publish(keyed("thing:made", "before"))
        .await
        .expect("publish");

    let bus = partitioned(&url, &name, 3).await.expect("partitions added");
    assert_eq!(bus.partitions(), Some(3));
    // Another process that did not ask for partitions uses the stream's.
    assert_eq!(plain_again(&url, &name).await.partitions(), Some(3));
    bus.publish(keyed("thing:made", "after"))
        .await
        .expect("publish");
    let mut ordered = bus
        .subscribe_ordered(&["thing:made"], "g", SubscribeOptions::default())
        .await
        .expect("ordered group");
    let mut plain_group = bus
        .subscribe("thing:made", "p", SubscribeOptions::default())
        .await
        .expect("plain group");
    for sub in [&mut ordered, &mut plain_group] {
        let mut keys = BTreeSet::new();
        for _ in 0..2 {
            let delivery = tokio::time::timeout(Duration::from_secs(10), sub.next())
                .await
                .expect("delivered")
                .expect("open")
                .expect("delivery");
            assert_eq!(delivery.subject(), "thing:made");
            keys.insert(delivery.headers()[partition::KEY].clone());
            delivery.ack().await.expect("ack");
        }
        assert_eq!(keys, BTreeSet::from(["before".into(), "after".into()]));
    }
    bus.delete_streams().await.expect("cleanup");
}

async fn plain_again(url: &str, name: &str) -> NatsBus {
    NatsBus::connect(NatsBusConfig {
        storage: NatsStorage::Memory,
        ..NatsBusConfig::isolated(url, name)
    })
    .await
    .expect("bus")
}

#[tokio::test]
async fn an_older_server_refuses_partitions_clearly() {
    let url = live::nats_url();
    let client = async_nats::connect(&url).await.expect("NATS");
    let version = client.server_info().version;
    let name = live::fresh_nats_stream_at(&url, "PARTS").await;
    let made = partitioned(&url, &name, 4).await;
    if version.starts_with("2.9") || version.starts_with("v2.9") {
        let error = made.expect_err("refused");
        assert!(
            matches!(&error, BusError::Unsupported(why) if why.contains("2.10")),
            "{error}"
        );
        let js = async_nats::jetstream::new(client);
        assert!(
            js.get_stream(&name).await.is_err(),
            "nothing was created on the way"
        );
    } else {
        // The distribution's server is recent here: partitions work on it too.
        let bus = made.expect("partitions on a recent server");
        assert_eq!(bus.partitions(), Some(4));
        bus.delete_streams().await.expect("cleanup");
    }
}

/// A service that turns per-key order on: its ordered group starts where the group's consumer
/// of several subjects left off, so nothing it handled comes again and nothing is skipped.
#[tokio::test]
async fn an_ordered_group_starts_where_the_groups_plain_consumer_left_off() {
    let url = live::current_nats_url();
    let name = live::fresh_nats_stream_at(&url, "PARTS").await;
    let bus = partitioned(&url, &name, 3).await.expect("partitioned bus");
    let subjects = ["thing:made", "thing:sold"];
    let mut plain = bus
        .subscribe_many(&subjects, "g", SubscribeOptions::default())
        .await
        .expect("plain group");
    for k in 0..4 {
        bus.publish(keyed(subjects[k % 2], &format!("handled-{k}")))
            .await
            .expect("publish");
    }
    for _ in 0..4 {
        let delivery = tokio::time::timeout(Duration::from_secs(10), plain.next())
            .await
            .expect("delivered")
            .expect("open")
            .expect("delivery");
        delivery.ack().await.expect("ack");
    }
    plain.close().await.expect("close");
    bus.flush().await.expect("flush");
    // The acks reach the server before the ordered group looks at the floor.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for k in 0..2 {
        bus.publish(keyed(subjects[k % 2], &format!("new-{k}")))
            .await
            .expect("publish");
    }
    let mut ordered = bus
        .subscribe_ordered(&subjects, "g", SubscribeOptions::default())
        .await
        .expect("ordered group");
    let mut keys = BTreeSet::new();
    while let Ok(Some(Ok(delivery))) =
        tokio::time::timeout(Duration::from_secs(2), ordered.next()).await
    {
        keys.insert(delivery.headers()[partition::KEY].clone());
        delivery.ack().await.expect("ack");
    }
    assert_eq!(keys, BTreeSet::from(["new-0".into(), "new-1".into()]));
    bus.delete_streams().await.expect("cleanup");
}

/// A member killed with deliveries out (its process gone: no clean-up, its connection closed)
/// keeps its leases until they lapse; then the other members take its partitions over, the
/// killed member's unsettled deliveries come again first, and every key's events are handled
/// once each, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_members_partitions_lapse_to_the_others_without_loss() {
    const KEYS: u64 = 8;
    const EACH: u64 = 3;
    // An ack wait longer than a lease lasts: the survivors take the partitions over while the
    // victim's deliveries are still pending, and must not hand out a key's later events first.
    let (url, name, bus, options) = four_partitions(Duration::from_secs(6)).await;
    let publish = |from: u64| {
        let bus = bus.clone();
        async move {
            for n in from..from + EACH {
                for k in 0..KEYS {
                    let payload = format!(r#"{{"key":"k{k}","n":{n}}}"#);
                    bus.publish(
                        OutgoingMessage::new("thing:made", payload.into_bytes())
                            .with_header(partition::KEY, format!("k{k}")),
                    )
                    .await
                    .expect("publish");
                }
            }
        }
    };
    publish(0).await;
    // The victim: alone, it takes every partition and fetches ahead; it takes one delivery,
    // never settles it, and its runtime (tasks and connection) goes away without a clean-up.
    let (victim_url, victim_stream) = (url.clone(), name.clone());
    let victim = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime");
        let taken = runtime.block_on(async {
            let bus = partitioned(&victim_url, &victim_stream, 4)
                .await
                .expect("the victim's bus");
            let mut sub = bus
                .subscribe_ordered(&["thing:made"], "g", options)
                .await
                .expect("the victim joins");
            let delivery = tokio::time::timeout(Duration::from_secs(15), sub.next())
                .await
                .expect("the victim gets a delivery")
                .expect("open")
                .expect("a delivery");
            let taken = delivery.headers().get(partition::KEY).cloned();
            std::mem::forget(delivery);
            std::mem::forget(sub);
            taken
        });
        runtime.shutdown_background();
        taken
    });
    let taken = victim.join().expect("the victim").expect("a keyed event");
    let killed = std::time::Instant::now();
    // Later events of the same keys, which must not overtake the victim's pending ones.
    publish(EACH).await;
    let survivors = [
        bus.subscribe_ordered(&["thing:made"], "g", options)
            .await
            .expect("a survivor joins"),
        bus.subscribe_ordered(&["thing:made"], "g", options)
            .await
            .expect("a survivor joins"),
    ];
    let log: std::sync::Arc<std::sync::Mutex<Vec<(String, u64, u32)>>> = Default::default();
    let mut tasks = Vec::new();
    for mut sub in survivors {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
            while (log.lock().expect("lock").len() as u64) < KEYS * EACH * 2
                && tokio::time::Instant::now() < deadline
            {
                let Ok(Some(Ok(delivery))) =
                    tokio::time::timeout(Duration::from_millis(200), sub.next()).await
                else {
                    continue;
                };
                let value: serde_json::Value =
                    serde_json::from_slice(delivery.payload()).expect("payload");
                let key = value["key"].as_str().expect("key").to_owned();
                let n = value["n"].as_u64().expect("n");
                log.lock().expect("lock").push((key, n, delivery.attempt()));
                delivery.ack().await.expect("ack");
            }
            sub.close().await.expect("close");
        }));
    }
    for task in tasks {
        task.await.expect("a survivor");
    }
    let took = killed.elapsed();
    let log = log.lock().expect("lock").clone();
    assert_eq!(
        log.len() as u64,
        KEYS * EACH * 2,
        "each event once: {log:?}"
    );
    for k in 0..KEYS {
        let key = format!("k{k}");
        let order: Vec<u64> = log
            .iter()
            .filter(|(x, _, _)| *x == key)
            .map(|(_, n, _)| *n)
            .collect();
        assert_eq!(order, (0..EACH * 2).collect::<Vec<_>>(), "order of {key}");
    }
    let (_, _, attempt) = log
        .iter()
        .find(|(key, n, _)| *key == taken && *n == 0)
        .expect("the victim's delivery came again");
    assert!(*attempt >= 2, "it was delivered before: attempt {attempt}");
    assert!(took < Duration::from_secs(25), "took over in {took:?}");
    bus.delete_streams().await.expect("cleanup");
}

/// The lease bucket lives in memory, so a restarted server has lost it: the members make it
/// again, take their partitions again, and the events published after go on being delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ordered_group_goes_on_when_its_lease_bucket_is_lost() {
    let (_, name, bus, options) = four_partitions(Duration::from_secs(1)).await;
    let mut sub = bus
        .subscribe_ordered(&["thing:made"], "g", options)
        .await
        .expect("ordered group");
    bus.publish(keyed("thing:made", "before"))
        .await
        .expect("publish");
    assert_eq!(next_acked_key(&mut sub).await, "before");
    let js = async_nats::jetstream::new(bus.client().clone());
    js.delete_key_value(format!("{name}_LEASES"))
        .await
        .expect("the lease bucket is there, and goes");
    // Past a few rounds: the member has found its leases gone with the bucket.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for key in ["after-1", "after-2", "after-3"] {
        bus.publish(keyed("thing:made", key))
            .await
            .expect("publish");
    }
    let mut seen = BTreeSet::new();
    for _ in 0..3 {
        seen.insert(next_acked_key(&mut sub).await);
    }
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(
        js.get_key_value(format!("{name}_LEASES")).await.is_ok(),
        "the bucket was made again"
    );
    sub.close().await.expect("close");
    bus.delete_streams().await.expect("cleanup");
}

/// The key of `sub`'s next delivery (within 20 s), acked.
async fn next_acked_key(sub: &mut Box<dyn ticketing_core::Subscription>) -> String {
    let delivery = tokio::time::timeout(Duration::from_secs(20), sub.next())
        .await
        .expect("a delivery within 20 s")
        .expect("open")
        .expect("a delivery");
    let key = delivery
        .headers()
        .get(partition::KEY)
        .cloned()
        .expect("a keyed event");
    delivery.ack().await.expect("ack");
    key
}

/// A bus on a fresh stream of four partitions on the current server, and subscription options
/// with `ack_wait`: the server's URL, the stream, the bus, the options.
async fn four_partitions(ack_wait: Duration) -> (String, String, NatsBus, SubscribeOptions) {
    let url = live::current_nats_url();
    let name = live::fresh_nats_stream_at(&url, "PARTS").await;
    let bus = partitioned(&url, &name, 4).await.expect("partitioned bus");
    let options = SubscribeOptions {
        ack_wait,
        ..SubscribeOptions::default()
    };
    (url, name, bus, options)
}
