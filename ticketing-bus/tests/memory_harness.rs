//! The in-memory bus as a test harness: retention, de-duplication window, statistics,
//! quiescence and fault injection.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use ticketing_bus::memory::{InMemoryBus, InMemoryBusConfig, ReleaseOrder};
use ticketing_core::{
    Bus, BusError, Event, HandlerError, Listener, ListenerOptions, MessageContext, OutgoingMessage,
    Publisher, SubscribeOptions, spawn_listener,
};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Step {
    n: u64,
}

impl Event for Step {
    const SUBJECT: &'static str = "harness:step";
    fn message_id(&self) -> String {
        format!("step:{}", self.n)
    }
}

/// Records what it sees; fails the first `fail_first` attempts of every message.
struct Recorder {
    seen: Arc<Mutex<Vec<(u64, u32)>>>,
    fail_first: u32,
}

#[async_trait]
impl Listener for Recorder {
    type Event = Step;
    fn queue_group(&self) -> &str {
        "recorder"
    }
    fn options(&self) -> ListenerOptions {
        ListenerOptions {
            ack_wait: Duration::from_secs(5),
            ..ListenerOptions::default()
        }
    }
    async fn on_message(&self, event: Step, ctx: &MessageContext<'_>) -> Result<(), HandlerError> {
        self.seen.lock().unwrap().push((event.n, ctx.attempt()));
        if ctx.attempt() <= self.fail_first {
            return Err(HandlerError::retry("not yet"));
        }
        Ok(())
    }
}

async fn recorder(
    bus: &InMemoryBus,
    fail_first: u32,
) -> (ticketing_core::ListenerHandle, Arc<Mutex<Vec<(u64, u32)>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let handle = spawn_listener(
        &bus.as_dyn(),
        Recorder {
            seen: seen.clone(),
            fail_first,
        },
    )
    .await
    .unwrap();
    (handle, seen)
}

async fn publish_steps(bus: &InMemoryBus, range: std::ops::Range<u64>) {
    let publisher = Publisher::<Step>::new(bus.as_dyn());
    for n in range {
        publisher.publish(&Step { n }).await.unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn settled_waits_through_retries_and_stats_count_them() {
    let bus = InMemoryBus::new();
    let (handle, seen) = recorder(&bus, 2).await;
    publish_steps(&bus, 0..3).await;
    bus.settled().await;
    assert_eq!(seen.lock().unwrap().len(), 9);
    let stats = bus.group_stats(Step::SUBJECT, "recorder").unwrap();
    assert_eq!(stats.delivered, 9);
    assert_eq!(stats.redelivered, 6);
    assert_eq!(stats.nacked, 6);
    assert_eq!(stats.acked, 3);
    assert_eq!(stats.dead_lettered, 0);
    assert_eq!(
        (
            stats.in_flight,
            stats.waiting,
            stats.undelivered,
            stats.members
        ),
        (0, 0, 0, 1)
    );
    handle.stop().await;
    assert_eq!(
        bus.group_stats(Step::SUBJECT, "recorder").unwrap().members,
        0
    );
}

#[tokio::test(start_paused = true)]
async fn settled_returns_at_once_when_nothing_listens() {
    let bus = InMemoryBus::new();
    publish_steps(&bus, 0..3).await;
    tokio::time::timeout(Duration::from_millis(1), bus.settled())
        .await
        .expect("settled");
}

#[tokio::test(start_paused = true)]
async fn typed_view_shows_what_was_published() {
    let bus = InMemoryBus::new();
    publish_steps(&bus, 0..3).await;
    bus.publish(OutgoingMessage::new(Step::SUBJECT, "garbage"))
        .await
        .unwrap();
    assert_eq!(
        bus.published::<Step>(),
        vec![Step { n: 0 }, Step { n: 1 }, Step { n: 2 }]
    );
    assert_eq!(bus.messages(Step::SUBJECT).len(), 4);
    assert!(bus.published::<Step>().len() < bus.messages(Step::SUBJECT).len());
}

#[tokio::test(start_paused = true)]
async fn retention_keeps_the_newest_messages_per_subject() {
    let bus = InMemoryBus::with_config(InMemoryBusConfig {
        max_messages_per_subject: 10,
        ..InMemoryBusConfig::default()
    });
    publish_steps(&bus, 0..25).await;
    let kept = bus.messages(Step::SUBJECT);
    assert_eq!(kept.len(), 10);
    assert_eq!(kept[0].sequence, 16);
    let (handle, seen) = recorder(&bus, 0).await;
    bus.settled().await;
    let ns: Vec<u64> = seen.lock().unwrap().iter().map(|(n, _)| *n).collect();
    assert_eq!(ns, (15..25).collect::<Vec<_>>());
    handle.stop().await;
}

#[tokio::test(start_paused = true)]
async fn retention_by_bytes_drops_old_payloads() {
    let bus = InMemoryBus::with_config(InMemoryBusConfig {
        max_bytes_per_subject: 1000,
        ..InMemoryBusConfig::default()
    });
    for _ in 0..50 {
        bus.publish(OutgoingMessage::new("big", vec![b'x'; 97]))
            .await
            .unwrap();
    }
    // 97 bytes of payload + 3 of subject = 100 per message.
    assert_eq!(bus.messages("big").len(), 10);
}

#[tokio::test(start_paused = true)]
async fn a_message_id_is_forgotten_after_the_duplicate_window() {
    let bus = InMemoryBus::new();
    let message = || OutgoingMessage::new("s", "x").with_message_id("id-1");
    assert!(!bus.publish(message()).await.unwrap().duplicate);
    tokio::time::advance(Duration::from_secs(119)).await;
    assert!(bus.publish(message()).await.unwrap().duplicate);
    tokio::time::advance(Duration::from_secs(2)).await;
    assert!(!bus.publish(message()).await.unwrap().duplicate);
    assert_eq!(bus.messages("s").len(), 2);
}

#[tokio::test(start_paused = true)]
async fn remembered_message_ids_are_bounded() {
    let bus = InMemoryBus::with_config(InMemoryBusConfig {
        max_duplicate_ids: 5,
        ..InMemoryBusConfig::default()
    });
    for i in 0..10 {
        bus.publish(OutgoingMessage::new("s", "x").with_message_id(format!("{i}")))
            .await
            .unwrap();
    }
    assert!(
        !bus.publish(OutgoingMessage::new("s", "x").with_message_id("0"))
            .await
            .unwrap()
            .duplicate
    );
    assert!(
        bus.publish(OutgoingMessage::new("s", "x").with_message_id("9"))
            .await
            .unwrap()
            .duplicate
    );
}

#[tokio::test(start_paused = true)]
async fn duplicated_delivery_reaches_the_handler_twice() {
    let bus = InMemoryBus::new();
    let (handle, seen) = recorder(&bus, 0).await;
    bus.faults().duplicate_next_delivery(Step::SUBJECT);
    publish_steps(&bus, 0..2).await;
    bus.settled().await;
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.iter().filter(|(n, _)| *n == 0).count(), 2);
    assert_eq!(seen.iter().filter(|(n, _)| *n == 1).count(), 1);
    handle.stop().await;
}

#[tokio::test(start_paused = true)]
async fn held_messages_are_released_in_reverse() {
    let bus = InMemoryBus::new();
    let (handle, seen) = recorder(&bus, 0).await;
    bus.faults().hold(Step::SUBJECT);
    publish_steps(&bus, 0..3).await;
    bus.settled().await;
    assert!(
        seen.lock().unwrap().is_empty(),
        "held messages were delivered"
    );
    bus.faults().release(Step::SUBJECT, ReleaseOrder::Reversed);
    publish_steps(&bus, 3..4).await;
    bus.settled().await;
    let ns: Vec<u64> = seen.lock().unwrap().iter().map(|(n, _)| *n).collect();
    assert_eq!(ns, vec![2, 1, 0, 3]);
    handle.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_delayed_message_is_overtaken() {
    let bus = InMemoryBus::new();
    let (handle, seen) = recorder(&bus, 0).await;
    bus.faults()
        .delay_next(Step::SUBJECT, 1, Duration::from_millis(300));
    publish_steps(&bus, 0..3).await;
    bus.settled().await;
    let ns: Vec<u64> = seen.lock().unwrap().iter().map(|(n, _)| *n).collect();
    assert_eq!(ns, vec![1, 2, 0]);
    handle.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_dropped_ack_means_a_redelivery_after_the_ack_wait() {
    let bus = InMemoryBus::new();
    let (handle, seen) = recorder(&bus, 0).await;
    bus.faults().drop_next_ack(Step::SUBJECT);
    let started = tokio::time::Instant::now();
    publish_steps(&bus, 0..1).await;
    bus.settled().await;
    assert!(started.elapsed() >= Duration::from_secs(5));
    assert_eq!(seen.lock().unwrap().clone(), vec![(0, 1), (0, 2)]);
    let stats = bus.group_stats(Step::SUBJECT, "recorder").unwrap();
    assert_eq!((stats.ack_timeouts, stats.acked), (1, 1));
    handle.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_failed_publish_is_reported_and_stores_nothing() {
    let bus = InMemoryBus::new();
    bus.faults().fail_next_publish(Step::SUBJECT);
    let err = bus
        .publish(OutgoingMessage::new(Step::SUBJECT, "{}"))
        .await
        .unwrap_err();
    assert!(matches!(err, BusError::Injected(_)));
    assert!(bus.messages(Step::SUBJECT).is_empty());
    bus.publish(OutgoingMessage::new(Step::SUBJECT, "{}"))
        .await
        .unwrap();
    assert_eq!(bus.messages(Step::SUBJECT).len(), 1);
}

#[tokio::test(start_paused = true)]
async fn cleared_faults_do_not_fire() {
    let bus = InMemoryBus::new();
    bus.faults().fail_next_publish("*");
    bus.faults().hold(Step::SUBJECT);
    bus.faults().clear();
    let (handle, seen) = recorder(&bus, 0).await;
    publish_steps(&bus, 0..2).await;
    bus.settled().await;
    assert_eq!(seen.lock().unwrap().len(), 2);
    handle.stop().await;
}

#[tokio::test(start_paused = true)]
async fn dead_letters_of_a_group_are_counted_and_redriven() {
    let bus = InMemoryBus::new();
    let mut sub = bus
        .subscribe("s", "g", SubscribeOptions::default())
        .await
        .unwrap();
    bus.publish(OutgoingMessage::new("s", "x")).await.unwrap();
    sub.next()
        .await
        .unwrap()
        .unwrap()
        .term("nope")
        .await
        .unwrap();
    assert_eq!(bus.group_stats("s", "g").unwrap().dead_lettered, 1);
    let letters = bus.dead_letters().await.unwrap();
    bus.redrive(letters[0].id).await.unwrap();
    let again = sub.next().await.unwrap().unwrap();
    assert_eq!(again.attempt(), 1);
    again.ack().await.unwrap();
    bus.settled().await;
    assert_eq!(bus.groups().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_release_reorders_messages_no_member_has_reached_yet() {
    let bus = InMemoryBus::new();
    let (handle, seen) = recorder(&bus, 0).await;
    bus.faults().hold(Step::SUBJECT);
    publish_steps(&bus, 0..3).await;
    // No yield: the member has not looked at the held messages.
    bus.faults().release(Step::SUBJECT, ReleaseOrder::Reversed);
    bus.settled().await;
    let ns: Vec<u64> = seen.lock().unwrap().iter().map(|(n, _)| *n).collect();
    assert_eq!(ns, vec![2, 1, 0]);
    handle.stop().await;
}

#[tokio::test(start_paused = true)]
async fn settled_except_leaves_out_groups_that_wait_on_purpose() {
    let bus = InMemoryBus::new();
    let mut timer = bus
        .subscribe("s", "scheduler", SubscribeOptions::default())
        .await
        .unwrap();
    let (handle, seen) = recorder(&bus, 0).await;
    bus.publish(OutgoingMessage::new("s", "x")).await.unwrap();
    timer
        .next()
        .await
        .unwrap()
        .unwrap()
        .nak(Some(Duration::from_secs(3600)))
        .await
        .unwrap();
    publish_steps(&bus, 0..2).await;
    let started = tokio::time::Instant::now();
    bus.settled_except(&["scheduler"]).await;
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(seen.lock().unwrap().len(), 2);
    assert_eq!(bus.group_stats("s", "scheduler").unwrap().waiting, 1);
    handle.stop().await;
    drop(timer);
}

/// An ordered group in the harness: its stats on each of its subjects, `settled` waiting for a
/// naked message it holds, and its partitions from the bus's configuration.
#[tokio::test(start_paused = true)]
async fn ordered_groups_show_in_stats_and_settled_waits_for_them() {
    let bus = InMemoryBus::with_config(InMemoryBusConfig {
        partitions: 1,
        ..InMemoryBusConfig::default()
    });
    let subjects = ["harness:a", "harness:b"];
    let mut sub = bus
        .subscribe_ordered(&subjects, "ordered", SubscribeOptions::default())
        .await
        .unwrap();
    for (subject, key) in [("harness:a", "x"), ("harness:b", "x"), ("harness:b", "y")] {
        let message =
            OutgoingMessage::new(subject, "{}").with_header(ticketing_core::partition::KEY, key);
        bus.publish(message).await.unwrap();
    }
    let first = sub.next().await.unwrap().unwrap();
    assert_eq!(first.subject(), "harness:a");
    // One partition: the key's next event waits behind the first, another key does not.
    let other = sub.try_next().expect("the other key").unwrap();
    assert_eq!(
        other.headers().get(ticketing_core::partition::KEY).unwrap(),
        "y"
    );
    assert!(sub.try_next().is_none());
    other.ack().await.unwrap();
    let stats = bus.group_stats("harness:b", "ordered").unwrap();
    assert_eq!((stats.in_flight, stats.undelivered), (1, 1));
    first.nak(Some(Duration::from_secs(30))).await.unwrap();
    let settled = tokio::spawn({
        let bus = bus.clone();
        async move { bus.settled().await }
    });
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(!settled.is_finished(), "a naked message is still due");
    let again = sub.next().await.unwrap().unwrap();
    assert_eq!((again.subject(), again.attempt()), ("harness:a", 2));
    again.ack().await.unwrap();
    let second = sub.next().await.unwrap().unwrap();
    assert_eq!(second.subject(), "harness:b");
    second.ack().await.unwrap();
    settled.await.unwrap();
    let stats = bus.group_stats("harness:a", "ordered").unwrap();
    assert_eq!((stats.delivered, stats.acked, stats.nacked), (4, 3, 1));
    let groups = bus.groups();
    assert!(
        groups
            .iter()
            .any(|(s, g, _)| s == "harness:a,harness:b" && g == "ordered"),
        "{groups:?}"
    );
}

/// A member's acknowledger is filled in again for its next delivery once the last one is done
/// with it: each delivery, held at once with others or taken after one was dropped, still
/// settles its own message.
#[tokio::test(start_paused = true)]
async fn each_delivery_settles_its_own_message_when_a_member_holds_several() {
    let bus = InMemoryBus::new();
    let dyn_bus = bus.as_dyn();
    publish_steps(&bus, 0..4).await;
    let mut member = dyn_bus
        .subscribe(Step::SUBJECT, "holder", SubscribeOptions::default())
        .await
        .unwrap();
    let mut next = async || member.next().await.unwrap().unwrap();
    let first = next().await;
    let second = next().await;
    // Settling takes the delivery: done with it.
    second.ack().await.unwrap();
    // Taken after the second was dropped: its acknowledger, again.
    let third = next().await;
    first.nak(None).await.unwrap();
    third.ack().await.unwrap();
    let again = next().await;
    assert_eq!((again.sequence(), again.attempt()), (1, 2));
    again.ack().await.unwrap();
    let fourth = next().await;
    assert_eq!((fourth.sequence(), fourth.attempt()), (4, 1));
    fourth.term("refused").await.unwrap();
    let stats = bus.group_stats(Step::SUBJECT, "holder").unwrap();
    assert_eq!(
        (
            stats.acked,
            stats.nacked,
            stats.dead_lettered,
            stats.in_flight
        ),
        (3, 1, 1, 0)
    );
}
