//! The several-subjects cases of the bus conformance suite: a queue group on several subjects
//! as one consumer ([`Bus::subscribe_many`]), a listener of an enum of events, and a group that
//! moves from one consumer per subject to one of all. [`bus_conformance_tests!`](crate::bus_conformance_tests)
//! runs them with the rest of the bus suite.

#![allow(missing_docs)]

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

use super::bus::{BusFactory, Numbered};
use super::eventually;
use crate::bus::{Bus, BusError, Delivery, OutgoingMessage, SubscribeOptions, Subscription};
use crate::event::Event;
use crate::listener::{HandlerError, Router};

const WAIT: Duration = Duration::from_secs(15);

/// The suite's second event type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lettered {
    pub n: u64,
}

impl Event for Lettered {
    const SUBJECT: &'static str = "conformance:lettered";
    fn message_id(&self) -> String {
        format!("{}:{}", Self::SUBJECT, self.n)
    }
}

crate::events! {
    /// Either event of the suite.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Either {
        Numbered(Numbered),
        Lettered(Lettered),
    }
}

const SUBJECTS: [&str; 2] = [Numbered::SUBJECT, Lettered::SUBJECT];

async fn publish(bus: &Arc<dyn Bus>, subject: &str, range: std::ops::Range<u64>) {
    for n in range {
        let payload = serde_json::to_vec(&Numbered { n }).expect("encode");
        bus.publish(OutgoingMessage::new(subject, payload))
            .await
            .expect("publish");
    }
}

fn seen(delivery: &Delivery) -> (String, u64) {
    let n = serde_json::from_slice::<Numbered>(delivery.payload())
        .expect("payload")
        .n;
    (delivery.subject().to_owned(), n)
}

async fn next(sub: &mut Box<dyn Subscription>) -> Delivery {
    match timeout(WAIT, sub.next()).await {
        Ok(Some(Ok(delivery))) => delivery,
        other => panic!("no delivery: {other:?}"),
    }
}

async fn nothing_more(sub: &mut Box<dyn Subscription>) {
    if let Ok(Some(Ok(delivery))) = timeout(Duration::from_millis(500), sub.next()).await {
        panic!("unexpected delivery {:?}", seen(&delivery));
    }
}

fn expected(ranges: [(&str, std::ops::Range<u64>); 2]) -> BTreeSet<(String, u64)> {
    ranges
        .into_iter()
        .flat_map(|(subject, range)| range.map(move |n| (subject.to_owned(), n)))
        .collect()
}

/// On a backend without consumers of several subjects: the refusal names the version needed.
async fn refused(bus: &Arc<dyn Bus>) {
    let refused = bus
        .subscribe_many(&SUBJECTS, "g", SubscribeOptions::default())
        .await;
    assert!(
        matches!(&refused, Err(BusError::Unsupported(why)) if why.contains("2.10")),
        "{:?}",
        refused.map(|_| ())
    );
}

pub async fn a_group_on_several_subjects_gets_every_message_of_each_once(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    if !factory.capabilities().several_subjects {
        return refused(&bus).await;
    }
    let options = SubscribeOptions::default();
    let mut a = bus
        .subscribe_many(&SUBJECTS, "g", options)
        .await
        .expect("subscribe");
    let mut b = bus
        .subscribe_many(&SUBJECTS, "g", options)
        .await
        .expect("subscribe");
    publish(&bus, Numbered::SUBJECT, 0..5).await;
    publish(&bus, Lettered::SUBJECT, 0..5).await;
    let mut got = Vec::new();
    while got.len() < 10 {
        let delivery = tokio::select! {
            d = next(&mut a) => d,
            d = next(&mut b) => d,
        };
        got.push(seen(&delivery));
        delivery.ack().await.expect("ack");
    }
    let unique: BTreeSet<_> = got.iter().cloned().collect();
    assert_eq!(unique.len(), got.len(), "delivered twice: {got:?}");
    assert_eq!(
        unique,
        expected([(Numbered::SUBJECT, 0..5), (Lettered::SUBJECT, 0..5)])
    );
    nothing_more(&mut a).await;
    nothing_more(&mut b).await;
    a.close().await.expect("close");
    b.close().await.expect("close");
}

pub async fn a_listener_of_an_enum_of_events_dispatches_by_subject_and_settles_each(
    factory: &dyn BusFactory,
) {
    let bus = factory.bus().await;
    let handled: Arc<Mutex<Vec<Either>>> = Arc::default();
    let token = CancellationToken::new();
    let handles = Router::new("either-listeners")
        .on(
            handled.clone(),
            |handled: Arc<Mutex<Vec<Either>>>, event: Either| async move {
                if event == Either::Numbered(Numbered { n: 3 }) {
                    return Err(HandlerError::permanent("three is refused"));
                }
                handled.lock().expect("handled").push(event);
                Ok(())
            },
        )
        .spawn(&bus, &token)
        .await
        .expect("spawn");
    assert_eq!(handles.len(), 1, "one listener for both subjects");
    assert_eq!(handles[0].subjects(), SUBJECTS);
    publish(&bus, Numbered::SUBJECT, 0..5).await;
    publish(&bus, Lettered::SUBJECT, 0..3).await;
    let handled = eventually(WAIT, "seven events handled", || {
        let handled = handled.lock().expect("handled").clone();
        async move { (handled.len() >= 7).then_some(handled) }
    })
    .await;
    let (mut numbered, mut lettered) = (BTreeSet::new(), BTreeSet::new());
    for event in &handled {
        match event {
            Either::Numbered(Numbered { n }) => numbered.insert(*n),
            Either::Lettered(Lettered { n }) => lettered.insert(*n),
        };
    }
    let (numbered, lettered): (Vec<u64>, Vec<u64>) = (
        numbered.into_iter().collect(),
        lettered.into_iter().collect(),
    );
    assert_eq!((numbered, lettered), (vec![0, 1, 2, 4], vec![0, 1, 2]));
    let dead = super::dead_letters_eventually(&bus, WAIT).await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].message.subject, Numbered::SUBJECT);
    assert!(
        dead[0].reason.contains("three is refused"),
        "{}",
        dead[0].reason
    );
    token.cancel();
    for handle in handles {
        handle.join().await;
    }
}

pub async fn a_group_moving_to_one_consumer_of_several_subjects_resumes_where_it_was(
    factory: &dyn BusFactory,
) {
    let bus = factory.bus().await;
    let options = SubscribeOptions::default();
    // Before: one consumer per subject, everything so far handled.
    let mut numbered = bus
        .subscribe(Numbered::SUBJECT, "movers", options)
        .await
        .expect("subscribe");
    let mut lettered = bus
        .subscribe(Lettered::SUBJECT, "movers", options)
        .await
        .expect("subscribe");
    publish(&bus, Numbered::SUBJECT, 0..3).await;
    publish(&bus, Lettered::SUBJECT, 0..3).await;
    for sub in [&mut numbered, &mut lettered] {
        for _ in 0..3 {
            next(sub).await.ack().await.expect("ack");
        }
    }
    numbered.close().await.expect("close");
    lettered.close().await.expect("close");
    // The acks reach the broker before the group moves.
    bus.flush().await.expect("flush");
    tokio::time::sleep(Duration::from_millis(300)).await;
    // While the group moves, more arrives.
    publish(&bus, Numbered::SUBJECT, 3..5).await;
    publish(&bus, Lettered::SUBJECT, 3..5).await;
    let mut all = if factory.capabilities().several_subjects {
        bus.subscribe_many(&SUBJECTS, "movers", options)
            .await
            .expect("subscribe")
    } else {
        // What the listener runtime does on such a backend.
        refused(&bus).await;
        crate::bus::subscribe_each(&*bus, &SUBJECTS, "movers", options)
            .await
            .expect("subscribe")
    };
    let mut got = BTreeSet::new();
    for _ in 0..4 {
        let delivery = next(&mut all).await;
        assert!(got.insert(seen(&delivery)), "twice: {:?}", seen(&delivery));
        delivery.ack().await.expect("ack");
    }
    assert_eq!(
        got,
        expected([(Numbered::SUBJECT, 3..5), (Lettered::SUBJECT, 3..5)]),
        "neither the history again nor a gap"
    );
    nothing_more(&mut all).await;
    all.close().await.expect("close");
}
