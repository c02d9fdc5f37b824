//! The listener runtime keeps driving the handlers in flight while it backs off after a
//! subscription error.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use ticketing_bus::memory::InMemoryBus;
use ticketing_core::{
    Event, HandlerError, Listener, ListenerOptions, MessageContext, OutgoingMessage, spawn_listener,
};
use tokio::time::Instant;

#[derive(Debug, Serialize, Deserialize)]
struct Ping {
    n: u64,
}

impl Event for Ping {
    const SUBJECT: &'static str = "ping";
    fn message_id(&self) -> String {
        format!("ping:{}", self.n)
    }
}

/// Takes 100 ms per message and notes when it finished.
struct Slow {
    finished: Arc<Mutex<Vec<Duration>>>,
    started: Instant,
}

#[async_trait]
impl Listener for Slow {
    type Event = Ping;

    fn queue_group(&self) -> &str {
        "slow"
    }

    fn options(&self) -> ListenerOptions {
        let mut options = ListenerOptions {
            concurrency: 4,
            ..ListenerOptions::default()
        };
        options.backoff.initial = Duration::from_secs(2);
        options
    }

    async fn on_message(&self, _: Ping, _: &MessageContext<'_>) -> Result<(), HandlerError> {
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.finished.lock().unwrap().push(self.started.elapsed());
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_handler_in_flight_finishes_while_the_runtime_backs_off() {
    let memory = InMemoryBus::new();
    let bus = memory.as_dyn();
    let finished = Arc::new(Mutex::new(Vec::new()));
    let handle = spawn_listener(
        &bus,
        Slow {
            finished: finished.clone(),
            started: Instant::now(),
        },
    )
    .await
    .unwrap();
    bus.publish(OutgoingMessage::new("ping", r#"{"n":1}"#))
        .await
        .unwrap();
    // The first message's handler is under way; then the member's next pull fails.
    tokio::time::sleep(Duration::from_millis(10)).await;
    memory.faults().fail_next_pull("ping");
    bus.publish(OutgoingMessage::new("ping", r#"{"n":2}"#))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let finished = finished.lock().unwrap().clone();
    assert_eq!(finished.len(), 2, "{finished:?}");
    // The first message's handler was in flight when the subscription failed: it finishes
    // after its own 100 ms, not after the 2 s back-off.
    assert!(finished[0] < Duration::from_millis(500), "{finished:?}");
    // The second waits for the back-off.
    assert!(finished[1] >= Duration::from_secs(2), "{finished:?}");
    handle.stop().await;
}
