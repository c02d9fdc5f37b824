//! The envelope cases of the bus conformance suite: every published event carries its
//! CloudEvents attributes as headers, and a listener reads older schema versions through the
//! event's upcast, and messages without the envelope. [`bus_conformance_tests!`](crate::bus_conformance_tests)
//! runs them with the rest of the bus suite.

#![allow(missing_docs)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::bus::{BusFactory, Numbered};
use super::eventually;
use crate::bus::{Bus, OutgoingMessage, SubscribeOptions};
use crate::envelope;
use crate::event::Event;
use crate::listener::{HandlerError, Router};
use crate::publisher::Publisher;

const WAIT: Duration = Duration::from_secs(15);

/// An event at schema version 2: version 1 had one `name`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Renamed {
    pub id: u64,
    pub first: String,
    pub last: String,
}

impl Event for Renamed {
    const SUBJECT: &'static str = "conformance:renamed";
    const VERSION: u32 = 2;
    fn message_id(&self) -> String {
        format!("{}:{}:{}", Self::SUBJECT, self.id, self.first)
    }
    fn upcast(version: u32, mut old: Value) -> Result<Value, String> {
        if version != 1 {
            return Err(format!("no upcast from version {version}"));
        }
        let name = old["name"]
            .as_str()
            .ok_or("a version 1 payload without a name")?;
        let (first, last) = name.split_once(' ').unwrap_or((name, ""));
        let (first, last) = (json!(first), json!(last));
        old["first"] = first;
        old["last"] = last;
        Ok(old)
    }
}

pub async fn published_events_carry_the_cloudevents_envelope(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    let mut sub = bus
        .subscribe(Numbered::SUBJECT, "g", SubscribeOptions::default())
        .await
        .expect("subscribe");
    let before = chrono::Utc::now() - chrono::Duration::seconds(1);
    envelope::with_source(
        "conformance-suite",
        Publisher::<Numbered>::new(bus.clone()).publish(&Numbered { n: 5 }),
    )
    .await
    .expect("publish");
    let delivery = tokio::time::timeout(WAIT, sub.next())
        .await
        .expect("a delivery")
        .expect("open")
        .expect("delivered");
    let headers = delivery.headers();
    let header = |name: &str| headers.get(name).map(String::as_str);
    assert_eq!(header(envelope::SPECVERSION), Some("1.0"));
    assert_eq!(header(envelope::ID), Some("conformance:numbered:5"));
    assert_eq!(header(envelope::SOURCE), Some("conformance-suite"));
    assert_eq!(header(envelope::TYPE), Some(Numbered::SUBJECT));
    assert_eq!(header(envelope::DATACONTENTTYPE), Some("application/json"));
    assert_eq!(header(envelope::SCHEMAVERSION), Some("1"));
    let time = header(envelope::TIME).expect("ce-time");
    let time = chrono::DateTime::parse_from_rfc3339(time).expect("an RFC 3339 ce-time");
    assert!(
        time >= before && time <= chrono::Utc::now() + chrono::Duration::seconds(1),
        "{time}"
    );
    // The payload is the event's JSON, unchanged: readers without the envelope read it.
    assert_eq!(
        serde_json::from_slice::<Value>(delivery.payload()).expect("json"),
        json!({"n": 5})
    );
    delivery.ack().await.expect("ack");
    sub.close().await.expect("close");
}

pub async fn an_older_schema_version_is_upcast_and_a_message_without_the_envelope_is_version_1(
    factory: &dyn BusFactory,
) {
    let bus: Arc<dyn Bus> = factory.bus().await;
    let seen: Arc<Mutex<Vec<Renamed>>> = Arc::default();
    let token = CancellationToken::new();
    let handles = Router::new("renamers")
        .on(
            seen.clone(),
            |seen: Arc<Mutex<Vec<Renamed>>>, renamed: Renamed| async move {
                seen.lock().expect("seen").push(renamed);
                Ok::<_, HandlerError>(())
            },
        )
        .spawn(&bus, &token)
        .await
        .expect("spawn");
    let old = |id: u64, payload: Value| {
        OutgoingMessage::new(Renamed::SUBJECT, payload.to_string())
            .with_message_id(format!("old:{id}"))
    };
    // Stored by a version 1 publisher, with the envelope.
    bus.publish(
        old(1, json!({"id": 1, "name": "Ada Lovelace"})).with_header(envelope::SCHEMAVERSION, "1"),
    )
    .await
    .expect("publish");
    // Stored before the envelope existed: no headers at all.
    bus.publish(old(2, json!({"id": 2, "name": "Grace Hopper"})))
        .await
        .expect("publish");
    // The current version.
    Publisher::<Renamed>::new(bus.clone())
        .publish(&Renamed {
            id: 3,
            first: "Alan".into(),
            last: "Turing".into(),
        })
        .await
        .expect("publish");
    // A version 1 payload the upcast cannot take: dead-lettered with the reason.
    bus.publish(old(4, json!({"id": 4})).with_header(envelope::SCHEMAVERSION, "1"))
        .await
        .expect("publish");
    let mut seen = eventually(WAIT, "three events read", || {
        let seen = seen.lock().expect("seen").clone();
        async move { (seen.len() >= 3).then_some(seen) }
    })
    .await;
    seen.sort_by_key(|r| r.id);
    let names: Vec<_> = seen
        .iter()
        .map(|r| (r.id, r.first.as_str(), r.last.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            (1, "Ada", "Lovelace"),
            (2, "Grace", "Hopper"),
            (3, "Alan", "Turing")
        ]
    );
    let dead = super::dead_letters_eventually(&bus, WAIT).await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(
        dead[0]
            .reason
            .contains("a version 1 payload without a name"),
        "{}",
        dead[0].reason
    );
    token.cancel();
    for handle in handles {
        handle.join().await;
    }
}
