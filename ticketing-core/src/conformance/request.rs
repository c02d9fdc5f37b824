//! The request/reply cases of the bus conformance suite: what [`Bus::request`] and
//! [`Bus::respond`] must do on every backend. [`bus_conformance_tests!`](crate::bus_conformance_tests)
//! runs them with the rest of the bus suite.

#![allow(missing_docs)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::bus::BusFactory;
use super::eventually;
use crate::bus::{Bus, BusError, OutgoingMessage, Reply, SubscribeOptions};
use crate::request::{Request, RequestError, Requester, spawn_responder};

const ASK: &str = "conformance:ask";
const WAIT: Duration = Duration::from_secs(10);

/// The typed request of the suite.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Double {
    pub n: u64,
}

/// Its reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Doubled {
    pub n: u64,
}

impl Request for Double {
    const SUBJECT: &'static str = "conformance:double";
    type Reply = Doubled;
}

/// Answers every request of `responder` with its payload and headers back, plus
/// `answered-by: name`; counts what each name answered.
async fn echo(
    bus: &Arc<dyn Bus>,
    group: &str,
    name: &'static str,
    counts: Arc<Mutex<BTreeMap<&'static str, usize>>>,
) {
    let mut responder = bus.respond(ASK, group).await.expect("respond");
    tokio::spawn(async move {
        while let Some(request) = responder.next().await {
            *counts.lock().expect("counts").entry(name).or_default() += 1;
            let mut headers = request.headers().clone();
            headers.insert("answered-by".into(), name.into());
            let payload = request.payload().clone();
            request
                .reply(Reply { payload, headers })
                .await
                .expect("reply");
        }
    });
}

fn ask(n: u64) -> OutgoingMessage {
    OutgoingMessage::new(ASK, n.to_string()).with_header("asked", n.to_string())
}

pub async fn a_request_gets_its_reply_with_payload_and_headers(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    let counts = Arc::default();
    echo(&bus, "answerers", "only", counts).await;
    let reply = bus.request(ask(7), WAIT).await.expect("a reply");
    assert_eq!(&reply.payload[..], b"7");
    assert_eq!(reply.headers.get("asked").map(String::as_str), Some("7"));
    assert_eq!(
        reply.headers.get("answered-by").map(String::as_str),
        Some("only")
    );
}

pub async fn each_request_goes_to_one_member_of_each_responder_group(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    let counts: Arc<Mutex<BTreeMap<&'static str, usize>>> = Arc::default();
    for (group, name) in [
        ("pricing", "pricing-a"),
        ("pricing", "pricing-b"),
        ("audit", "audit"),
    ] {
        echo(&bus, group, name, counts.clone()).await;
    }
    const REQUESTS: usize = 24;
    for n in 0..REQUESTS as u64 {
        bus.request(ask(n), WAIT).await.expect("a reply");
    }
    let counts = eventually(WAIT, "every group's member to see every request", || {
        let counts = counts.lock().expect("counts").clone();
        let pricing = counts.get("pricing-a").copied().unwrap_or(0)
            + counts.get("pricing-b").copied().unwrap_or(0);
        let audit = counts.get("audit").copied().unwrap_or(0);
        async move { (pricing == REQUESTS && audit == REQUESTS).then_some(counts) }
    })
    .await;
    assert!(
        counts.get("pricing-a").copied().unwrap_or(0) > 0
            && counts.get("pricing-b").copied().unwrap_or(0) > 0,
        "both members of one group share its requests: {counts:?}"
    );
}

pub async fn a_request_without_responders_fails_at_once_as_no_responders(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    let started = Instant::now();
    let outcome = bus.request(ask(1), WAIT).await;
    assert!(
        matches!(outcome, Err(BusError::NoResponders(ref subject)) if subject == ASK),
        "{outcome:?}"
    );
    assert!(
        started.elapsed() < WAIT / 2,
        "no responder is told at once, not after the timeout: {:?}",
        started.elapsed()
    );
}

pub async fn a_responder_that_does_not_reply_makes_the_request_time_out(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    let mut responder = bus.respond(ASK, "silent").await.expect("respond");
    let held = tokio::spawn(async move {
        // Holds the request unanswered until the requester gave up.
        let request = responder.next().await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        drop(request);
        responder
    });
    let timeout = Duration::from_millis(500);
    let started = Instant::now();
    let outcome = bus.request(ask(1), timeout).await;
    assert!(matches!(outcome, Err(BusError::Timeout(_))), "{outcome:?}");
    assert!(started.elapsed() >= timeout, "{:?}", started.elapsed());
    held.await.expect("responder");
}

pub async fn a_closed_responder_gets_no_more_requests(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    let counts = Arc::default();
    echo(&bus, "staying", "staying", counts).await;
    let leaving = bus.respond(ASK, "leaving").await.expect("respond");
    leaving.close().await.expect("close");
    for n in 0..5 {
        let reply = bus.request(ask(n), WAIT).await.expect("a reply");
        assert_eq!(
            reply.headers.get("answered-by").map(String::as_str),
            Some("staying")
        );
    }
    let alone = factory.bus().await;
    let responder = alone.respond(ASK, "leaving").await.expect("respond");
    responder.close().await.expect("close");
    let outcome = alone.request(ask(9), WAIT).await;
    assert!(
        matches!(outcome, Err(BusError::NoResponders(_))),
        "{outcome:?}"
    );
}

pub async fn requests_are_not_events_nothing_is_stored(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    let counts = Arc::default();
    echo(&bus, "answerers", "only", counts).await;
    bus.request(ask(1), WAIT).await.expect("a reply");
    // A queue group on the same subject name sees no message: requests never reach a stream.
    let mut events = bus
        .subscribe(ASK, "listeners", SubscribeOptions::default())
        .await
        .expect("subscribe");
    let next = tokio::time::timeout(Duration::from_millis(500), events.next()).await;
    assert!(next.is_err(), "a request was stored as an event: {next:?}");
    events.close().await.expect("close");
}

pub async fn typed_requests_get_decoded_replies_and_refusals_with_their_reason(
    factory: &dyn BusFactory,
) {
    let bus: Arc<dyn Bus> = factory.bus().await;
    let token = tokio_util::sync::CancellationToken::new();
    let responder = spawn_responder(
        &bus,
        "doublers",
        (),
        |(), Double { n }| async move {
            if n == 13 {
                return Err("13 is not doubled".into());
            }
            Ok(Doubled { n: 2 * n })
        },
        token.clone(),
    )
    .await
    .expect("responder");
    let requester = Requester::<Double>::new(bus.clone()).with_timeout(WAIT);
    assert_eq!(
        requester.request(&Double { n: 21 }).await.expect("reply"),
        Doubled { n: 42 }
    );
    let refused = requester.request(&Double { n: 13 }).await;
    assert!(
        matches!(&refused, Err(RequestError::Refused { reason, .. }) if reason == "13 is not doubled"),
        "{refused:?}"
    );
    // An undecodable request is refused too, with the decode error.
    let raw = bus
        .request(OutgoingMessage::new(Double::SUBJECT, "not json"), WAIT)
        .await
        .expect("a reply");
    let reason = raw.headers.get(crate::request::REFUSED).expect("a refusal");
    assert!(reason.contains("could not decode"), "{reason}");
    responder.stop().await;
    let gone = requester.request(&Double { n: 1 }).await;
    assert!(
        matches!(gone, Err(RequestError::NoResponders { .. })),
        "{gone:?}"
    );
}
