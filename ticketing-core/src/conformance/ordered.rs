//! The per-key ordering cases of the bus conformance suite ([`Bus::subscribe_ordered`]): order
//! per key across subjects under parallel members, a nak holding only its key (not the keys
//! that share its partition), a dead member's partition taken over without loss, dead letters
//! letting a key flow on, and a listener with
//! [`ListenerOptions::ordered`]. [`bus_conformance_tests!`](crate::bus_conformance_tests) runs
//! them with the rest of the bus suite; a bus without partitions must refuse with
//! [`BusError::Unsupported`].

#![allow(missing_docs)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::timeout;

use super::bus::{BusFactory, Numbered};
use super::several::Lettered;
use super::{dead_letters_eventually, eventually};
use crate::bus::{Bus, BusError, Delivery, OutgoingMessage, SubscribeOptions, Subscription};
use crate::event::Event;
use crate::listener::{HandlerError, ListenerOptions, Router};
use crate::partition;

const WAIT: Duration = Duration::from_secs(15);
const SUBJECTS: [&str; 2] = [Numbered::SUBJECT, Lettered::SUBJECT];

/// Event `n` of `key`, on the two subjects in turn; the payload says both.
fn keyed(key: &str, n: u64) -> OutgoingMessage {
    let subject = SUBJECTS[(n % 2) as usize];
    let payload = serde_json::json!({ "n": n, "key": key });
    OutgoingMessage::new(subject, serde_json::to_vec(&payload).expect("encode"))
        .with_header(partition::KEY, key)
        .with_message_id(format!("{subject}:{key}:{n}"))
}

fn seen(delivery: &Delivery) -> (String, u64) {
    let value: serde_json::Value = serde_json::from_slice(delivery.payload()).expect("payload");
    let key = value["key"].as_str().expect("key").to_owned();
    let n = value["n"].as_u64().expect("n");
    assert_eq!(delivery.subject(), SUBJECTS[(n % 2) as usize], "subject");
    (key, n)
}

async fn ordered(bus: &Arc<dyn Bus>, group: &str, opts: SubscribeOptions) -> Box<dyn Subscription> {
    bus.subscribe_ordered(&SUBJECTS, group, opts)
        .await
        .expect("subscribe_ordered")
}

async fn next(sub: &mut Box<dyn Subscription>) -> Delivery {
    match timeout(WAIT, sub.next()).await {
        Ok(Some(Ok(delivery))) => delivery,
        other => panic!("no delivery: {other:?}"),
    }
}

async fn nothing_within(sub: &mut Box<dyn Subscription>, within: Duration) {
    if let Ok(Some(Ok(delivery))) = timeout(within, sub.next()).await {
        panic!(
            "unexpected delivery {:?} (attempt {})",
            seen(&delivery),
            delivery.attempt()
        );
    }
}

/// A bus of the factory's, if it offers ordered groups (if not, it must refuse with
/// `Unsupported`).
async fn ordered_bus(factory: &dyn BusFactory) -> Option<Arc<dyn Bus>> {
    let bus = factory.bus().await;
    supported(factory, &bus).await.then_some(bus)
}

/// Whether the bus offers ordered groups; if it does not, it must say so with `Unsupported`.
async fn supported(factory: &dyn BusFactory, bus: &Arc<dyn Bus>) -> bool {
    if factory.capabilities().ordered {
        return true;
    }
    match bus
        .subscribe_ordered(&SUBJECTS, "g", SubscribeOptions::default())
        .await
    {
        Err(BusError::Unsupported(why)) => {
            assert!(why.contains("partition"), "the refusal says why: {why}");
            false
        }
        Ok(_) => panic!("the capabilities say no ordered groups, but the bus made one"),
        Err(other) => panic!("expected Unsupported, got {other}"),
    }
}

pub async fn an_ordered_group_keeps_each_keys_order_across_subjects_with_parallel_members(
    factory: &dyn BusFactory,
) {
    let Some(bus) = ordered_bus(factory).await else {
        return;
    };
    const KEYS: u64 = 12;
    const EACH: u64 = 6;
    // Members first: a group made before the publishes gets them all.
    let members: Vec<_> = [
        ordered(&bus, "g", SubscribeOptions::default()).await,
        ordered(&bus, "g", SubscribeOptions::default()).await,
    ]
    .into();
    for n in 0..EACH {
        for k in 0..KEYS {
            bus.publish(keyed(&format!("key-{k}"), n))
                .await
                .expect("publish");
        }
    }
    let log: Arc<Mutex<Vec<(usize, String, u64)>>> = Arc::default();
    let busy: Arc<Mutex<(BTreeSet<String>, usize)>> = Arc::default();
    let mut tasks = Vec::new();
    for (member, mut sub) in members.into_iter().enumerate() {
        let (log, busy) = (log.clone(), busy.clone());
        tasks.push(tokio::spawn(async move {
            // Each member takes until every event is handled: a member may hold no partition
            // until the group has shared them out.
            while (log.lock().expect("lock").len() as u64) < KEYS * EACH {
                let Ok(Some(Ok(delivery))) = timeout(Duration::from_millis(200), sub.next()).await
                else {
                    continue;
                };
                let (key, n) = seen(&delivery);
                {
                    let mut busy = busy.lock().expect("lock");
                    assert!(busy.0.insert(key.clone()), "{key} handled twice at once");
                    busy.1 = busy.1.max(busy.0.len());
                }
                log.lock().expect("lock").push((member, key.clone(), n));
                tokio::time::sleep(Duration::from_millis(5)).await;
                busy.lock().expect("lock").0.remove(&key);
                delivery.ack().await.expect("ack");
            }
            sub
        }));
    }
    eventually(WAIT, "every event handled", || async {
        (log.lock().expect("lock").len() as u64 >= KEYS * EACH).then_some(())
    })
    .await;
    for task in tasks {
        timeout(WAIT, task)
            .await
            .expect("the member stops")
            .expect("member")
            .close()
            .await
            .expect("close");
    }
    let log = log.lock().expect("lock").clone();
    assert_eq!(log.len() as u64, KEYS * EACH, "each event once: {log:?}");
    let mut per_key: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for (_, key, n) in &log {
        per_key.entry(key).or_default().push(*n);
    }
    for (key, order) in &per_key {
        assert_eq!(order, &(0..EACH).collect::<Vec<_>>(), "order of {key}");
    }
    let by_member: BTreeSet<usize> = log.iter().map(|(m, _, _)| *m).collect();
    assert_eq!(by_member.len(), 2, "both members took part");
    assert!(
        busy.lock().expect("lock").1 >= 2,
        "keys of other partitions ran at once"
    );
}

/// A member of group `g` given `count` events of `key`, the first of which it took and naked
/// with `delay`.
async fn first_naked(
    bus: &Arc<dyn Bus>,
    key: &str,
    count: u64,
    delay: Duration,
) -> Box<dyn Subscription> {
    let mut sub = ordered(bus, "g", SubscribeOptions::default()).await;
    for n in 0..count {
        bus.publish(keyed(key, n)).await.expect("publish");
    }
    let first = next(&mut sub).await;
    assert_eq!(seen(&first), (key.to_owned(), 0));
    first.nak(Some(delay)).await.expect("nak");
    sub
}

pub async fn a_nak_holds_its_key_until_the_redelivery_is_settled(factory: &dyn BusFactory) {
    let caps = factory.capabilities();
    let Some(bus) = ordered_bus(factory).await else {
        return;
    };
    let delay = Duration::from_millis(400);
    let mut sub = first_naked(&bus, "held", 3, delay).await;
    // The key's next event does not overtake the naked one.
    nothing_within(&mut sub, delay - Duration::from_millis(100)).await;
    let again = next(&mut sub).await;
    assert_eq!((seen(&again), again.attempt()), (("held".into(), 0), 2));
    nothing_within(&mut sub, caps.timing_slack.min(Duration::from_millis(200))).await;
    again.ack().await.expect("ack");
    for n in 1..3 {
        let d = next(&mut sub).await;
        assert_eq!(seen(&d), ("held".into(), n));
        d.ack().await.expect("ack");
    }
}

/// A waiting key does not hold the others: while one key's event is naked, the events of 32
/// other keys (with any partition count up to 32, some share its partition) are handed out.
pub async fn a_nak_holds_only_its_key_not_the_keys_that_share_its_partition(
    factory: &dyn BusFactory,
) {
    let Some(bus) = ordered_bus(factory).await else {
        return;
    };
    const OTHERS: u64 = 32;
    let delay = Duration::from_secs(2);
    let mut sub = first_naked(&bus, "waiting", 2, delay).await;
    let naked = std::time::Instant::now();
    for k in 0..OTHERS {
        bus.publish(keyed(&format!("other-{k}"), 0))
            .await
            .expect("publish");
    }
    let mut others = BTreeSet::new();
    while others.len() < OTHERS as usize {
        let d = next(&mut sub).await;
        let (key, n) = seen(&d);
        assert_ne!(
            key, "waiting",
            "the naked key's events came back before the other keys' ({n})"
        );
        assert!(others.insert(key), "each other key once");
        d.ack().await.expect("ack");
    }
    assert!(
        naked.elapsed() < delay,
        "the other keys waited for the naked one: {:?}",
        naked.elapsed()
    );
    for n in 0..2 {
        let d = next(&mut sub).await;
        assert_eq!(seen(&d), ("waiting".into(), n));
        d.ack().await.expect("ack");
    }
}

pub async fn a_dead_members_partition_goes_to_another_member_without_loss(
    factory: &dyn BusFactory,
) {
    let caps = factory.capabilities();
    let Some(bus) = ordered_bus(factory).await else {
        return;
    };
    let opts = SubscribeOptions {
        ack_wait: caps.short_ack_wait,
        ..SubscribeOptions::default()
    };
    let mut dying = ordered(&bus, "g", opts).await;
    for n in 0..4 {
        bus.publish(keyed("orphan", n)).await.expect("publish");
    }
    let lost = next(&mut dying).await;
    assert_eq!(seen(&lost), ("orphan".into(), 0));
    drop(lost);
    drop(dying);
    let mut survivor = ordered(&bus, "g", opts).await;
    let taken = next(&mut survivor).await;
    assert_eq!((seen(&taken), taken.attempt()), (("orphan".into(), 0), 2));
    taken.ack().await.expect("ack");
    // A member that fetched ahead was delivered the key's later events too: they may come
    // again as redeliveries, but in order.
    for n in 1..4 {
        let d = next(&mut survivor).await;
        assert_eq!(seen(&d), ("orphan".into(), n));
        assert!(d.attempt() <= 2, "attempt {}", d.attempt());
        d.ack().await.expect("ack");
    }
    nothing_within(&mut survivor, Duration::from_millis(300)).await;
}

pub async fn a_dead_lettered_event_lets_its_key_flow_and_is_redriven_to_its_group(
    factory: &dyn BusFactory,
) {
    let Some(bus) = ordered_bus(factory).await else {
        return;
    };
    let mut sub = ordered(&bus, "g", SubscribeOptions::default()).await;
    for n in 0..2 {
        bus.publish(keyed("poison", n)).await.expect("publish");
    }
    let bad = next(&mut sub).await;
    bad.term("cannot be handled").await.expect("term");
    let d = next(&mut sub).await;
    assert_eq!(seen(&d), ("poison".into(), 1));
    d.ack().await.expect("ack");
    let dead = dead_letters_eventually(&bus, WAIT).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].group, "g");
    assert_eq!(dead[0].message.subject, Numbered::SUBJECT);
    assert_eq!(dead[0].reason, "cannot be handled");
    bus.redrive(dead[0].id).await.expect("redrive");
    let again = next(&mut sub).await;
    assert_eq!((seen(&again), again.attempt()), (("poison".into(), 0), 1));
    again.ack().await.expect("ack");
}

pub async fn ordered_groups_of_one_name_on_one_subject_each_and_on_both_are_independent(
    factory: &dyn BusFactory,
) {
    let Some(bus) = ordered_bus(factory).await else {
        return;
    };
    let opts = SubscribeOptions::default();
    let mut numbered = bus
        .subscribe_ordered(&[Numbered::SUBJECT], "shared", opts)
        .await
        .expect("ordered on one subject");
    let mut lettered = bus
        .subscribe_ordered(&[Lettered::SUBJECT], "shared", opts)
        .await
        .expect("ordered on the other");
    let mut both = ordered(&bus, "shared", opts).await;
    for n in 0..2 {
        bus.publish(keyed("k", n)).await.expect("publish");
    }
    let d = next(&mut numbered).await;
    assert_eq!((d.subject(), seen(&d).1), (Numbered::SUBJECT, 0));
    d.ack().await.expect("ack");
    let d = next(&mut lettered).await;
    assert_eq!((d.subject(), seen(&d).1), (Lettered::SUBJECT, 1));
    d.ack().await.expect("ack");
    for n in 0..2 {
        let d = next(&mut both).await;
        assert_eq!(seen(&d).1, n);
        d.ack().await.expect("ack");
    }
    for sub in [&mut numbered, &mut lettered, &mut both] {
        nothing_within(sub, Duration::from_millis(300)).await;
    }
}

crate::events! {
    /// The suite's two events, for the ordered listener.
    #[derive(Debug)]
    pub enum Keyed {
        Numbered(Numbered),
        Lettered(Lettered),
    }
}

/// Logs each event with its key and checks that no key is in the handler twice at once.
#[derive(Default, Clone)]
struct KeyedHandler {
    log: Arc<Mutex<Vec<(String, u64)>>>,
    in_handler: Arc<Mutex<BTreeSet<String>>>,
}

#[async_trait::async_trait]
impl crate::listener::Handler for KeyedHandler {
    type Event = Keyed;

    async fn handle(
        &self,
        event: Keyed,
        ctx: &crate::listener::MessageContext<'_>,
    ) -> Result<(), HandlerError> {
        let key = ctx
            .headers()
            .get(partition::KEY)
            .cloned()
            .ok_or_else(|| HandlerError::permanent("no key"))?;
        let n = match event {
            Keyed::Numbered(e) => e.n,
            Keyed::Lettered(e) => e.n,
        };
        let fresh = self.in_handler.lock().expect("lock").insert(key.clone());
        assert!(fresh, "{key} in the handler twice at once");
        tokio::time::sleep(Duration::from_millis(3)).await;
        self.in_handler.lock().expect("lock").remove(&key);
        self.log.lock().expect("lock").push((key, n));
        Ok(())
    }
}

/// Per-key order in a listener: the suite's two events in an enum, each key's events one at a
/// time and in order though the listener handles eight messages at once.
pub async fn an_ordered_listener_handles_each_key_in_order_while_running_keys_in_parallel(
    factory: &dyn BusFactory,
) {
    let Some(bus) = ordered_bus(factory).await else {
        return;
    };
    const KEYS: u64 = 8;
    const EACH: u64 = 4;
    let handler = KeyedHandler::default();
    let options = ListenerOptions {
        ordered: true,
        concurrency: 8,
        ..ListenerOptions::default()
    };
    let token = tokio_util::sync::CancellationToken::new();
    let handles = Router::new("ordered-listener")
        .options(options)
        .handle(handler.clone())
        .spawn(&bus, &token)
        .await
        .expect("spawn");
    for n in 0..EACH {
        for k in 0..KEYS {
            bus.publish(keyed(&format!("k{k}"), n))
                .await
                .expect("publish");
        }
    }
    eventually(WAIT, "every event handled", || async {
        (handler.log.lock().expect("lock").len() as u64 >= KEYS * EACH).then_some(())
    })
    .await;
    token.cancel();
    for handle in handles {
        handle.join().await;
    }
    let log = handler.log.lock().expect("lock").clone();
    assert_eq!(log.len() as u64, KEYS * EACH, "each event once");
    for k in 0..KEYS {
        let key = format!("k{k}");
        let order: Vec<u64> = log
            .iter()
            .filter(|(x, _)| *x == key)
            .map(|(_, n)| *n)
            .collect();
        assert_eq!(order, (0..EACH).collect::<Vec<_>>(), "order of {key}");
    }
}
