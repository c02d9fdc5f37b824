//! The delivery span: made only when something records it, while the publisher's trace is
//! continued either way (what a handler publishes carries it on).

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use ticketing_bus::InMemoryBus;
use ticketing_core::listener::{Handler, Router};
use ticketing_core::trace::TraceContext;
use ticketing_core::{Event, HandlerError, MessageContext, Publisher};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Serialize, Deserialize)]
struct Rang(u32);
impl Event for Rang {
    const SUBJECT: &'static str = "bell:rang";
    fn message_id(&self) -> String {
        format!("{}:{}", Self::SUBJECT, self.0)
    }
}

/// What a handler saw: the name of the span it ran in, and the trace it ran in.
type Seen = Arc<Mutex<Vec<(Option<&'static str>, Option<String>)>>>;

struct Look(Seen);

#[async_trait]
impl Handler for Look {
    type Event = Rang;
    async fn handle(&self, _: Rang, _: &MessageContext<'_>) -> Result<(), HandlerError> {
        let span = tracing::Span::current().metadata().map(|m| m.name());
        let trace = TraceContext::current().map(|c| c.trace_id());
        self.0.lock().unwrap().push((span, trace));
        Ok(())
    }
}

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// Publishes `Rang(n)` in the trace [`TRACE`] and waits until it is handled.
async fn ring(memory: &InMemoryBus, n: u32) {
    let publisher = Publisher::<Rang>::new(memory.as_dyn());
    let caller = TraceContext::parse(&format!("00-{TRACE}-00f067aa0ba902b7-01")).unwrap();
    ticketing_core::trace::scope(caller, publisher.publish(&Rang(n)))
        .await
        .expect("publish");
    memory.settled().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_delivery_span_is_made_when_recorded_and_the_trace_goes_on_either_way() {
    let memory = InMemoryBus::new();
    let seen = Seen::default();
    let token = CancellationToken::new();
    let handles = Router::new("bells")
        .handle(Look(seen.clone()))
        .spawn(&memory.as_dyn(), &token)
        .await
        .expect("spawn");

    // Nothing records spans: no span, the publisher's trace all the same.
    ring(&memory, 1).await;
    // A subscriber at INFO (for the whole process: the listener runs on the runtime's threads).
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_writer(std::io::sink)
        .init();
    ring(&memory, 2).await;

    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![
            (None, Some(TRACE.to_owned())),
            (Some("message"), Some(TRACE.to_owned())),
        ]
    );
    token.cancel();
    for handle in handles {
        handle.join().await;
    }
}
