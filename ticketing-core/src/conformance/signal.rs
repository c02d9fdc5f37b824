//! The signal cases of the bus conformance suite: what [`Bus::signal`](crate::Bus::signal) and
//! [`Bus::signals`](crate::Bus::signals)
//! must do on every backend. [`bus_conformance_tests!`](crate::bus_conformance_tests) runs
//! them with the rest of the bus suite.

#![allow(missing_docs)]

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;

use super::bus::BusFactory;
use crate::bus::{BusError, Signals};

const WAKE: &str = "conformance:wake";
const WAIT: Duration = Duration::from_secs(10);

async fn next(signals: &mut Signals) -> Bytes {
    tokio::time::timeout(WAIT, signals.next())
        .await
        .expect("a signal within 10 s")
        .expect("the signals go on")
}

/// No signal within `quiet`.
async fn none_within(signals: &mut Signals, quiet: Duration) {
    if let Ok(signal) = tokio::time::timeout(quiet, signals.next()).await {
        panic!("a signal came that should not have: {signal:?}");
    }
}

pub async fn every_listener_gets_each_signal_in_order(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    let mut first = bus.signals(WAKE).await.expect("listen");
    let mut second = bus.signals(WAKE).await.expect("listen");
    for n in 0..3u8 {
        bus.signal(WAKE, Bytes::from(vec![n]))
            .await
            .expect("signal");
    }
    for listener in [&mut first, &mut second] {
        for n in 0..3u8 {
            assert_eq!(next(listener).await, Bytes::from(vec![n]));
        }
    }
}

pub async fn a_signal_reaches_only_its_subject_and_nobody_after_it(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    let mut other = bus.signals("conformance:other").await.expect("listen");
    // Nobody listens to WAKE: the signal is dropped, not kept for a later listener.
    bus.signal(WAKE, Bytes::from_static(b"early"))
        .await
        .expect("a signal nobody listens to is no error");
    let mut late = bus.signals(WAKE).await.expect("listen");
    bus.signal(WAKE, Bytes::from_static(b"now"))
        .await
        .expect("signal");
    assert_eq!(next(&mut late).await, Bytes::from_static(b"now"));
    none_within(&mut other, Duration::from_millis(200)).await;
    none_within(&mut late, Duration::from_millis(200)).await;
}

pub async fn signals_are_not_events_nothing_is_stored(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    let mut signals = bus.signals(WAKE).await.expect("listen");
    bus.signal(WAKE, Bytes::from_static(b"hint"))
        .await
        .expect("signal");
    assert_eq!(next(&mut signals).await, Bytes::from_static(b"hint"));
    // No stream holds it: a queue group on the subject sees nothing.
    let mut members = bus
        .subscribe(WAKE, "conformance-signals", Default::default())
        .await
        .expect("subscribe");
    let delivery = tokio::time::timeout(Duration::from_millis(300), members.next()).await;
    assert!(delivery.is_err(), "a signal was stored as a message");
    assert!(matches!(
        bus.signal("not a subject", Bytes::new()).await,
        Err(BusError::InvalidSubject { .. })
    ));
}
