//! Handlers registered on one router: one queue group and its options, a handler per event
//! type, on the in-memory bus.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use ticketing_bus::InMemoryBus;
use ticketing_core::listener::{Handler, Router};
use ticketing_core::{BusError, Event, HandlerError, ListenerOptions, MessageContext, Publisher};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Serialize, Deserialize)]
struct Shipped(u32);
impl Event for Shipped {
    const SUBJECT: &'static str = "parcel:shipped";
    fn message_id(&self) -> String {
        format!("{}:{}", Self::SUBJECT, self.0)
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Delivered(u32);
impl Event for Delivered {
    const SUBJECT: &'static str = "parcel:delivered";
    fn message_id(&self) -> String {
        format!("{}:{}", Self::SUBJECT, self.0)
    }
}

struct Count<E>(Arc<AtomicUsize>, std::marker::PhantomData<fn(E)>);

#[async_trait]
impl<E: Event> Handler for Count<E> {
    type Event = E;
    async fn handle(&self, _: E, ctx: &MessageContext<'_>) -> Result<(), HandlerError> {
        assert_eq!(ctx.group(), "parcels");
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

fn count<E>(n: &Arc<AtomicUsize>) -> Count<E> {
    Count(n.clone(), std::marker::PhantomData)
}

#[tokio::test(start_paused = true)]
async fn every_handler_of_a_router_runs_in_its_queue_group() {
    let memory = InMemoryBus::new();
    let bus = memory.as_dyn();
    let (shipped, delivered) = (Arc::default(), Arc::default());
    let router = Router::new("parcels")
        .options(ListenerOptions {
            concurrency: 2,
            ..ListenerOptions::default()
        })
        .handle(count::<Shipped>(&shipped))
        .handle(count::<Delivered>(&delivered));
    assert_eq!(router.subjects(), ["parcel:shipped", "parcel:delivered"]);
    let token = CancellationToken::new();
    let handles = router.spawn(&bus, &token).await.expect("spawn");
    assert_eq!(handles.len(), 2);
    for n in 0..3 {
        Publisher::<Shipped>::new(bus.clone())
            .publish(&Shipped(n))
            .await
            .expect("publish");
    }
    Publisher::<Delivered>::new(bus.clone())
        .publish(&Delivered(0))
        .await
        .expect("publish");
    memory.settled().await;
    assert_eq!(shipped.load(Ordering::SeqCst), 3);
    assert_eq!(delivered.load(Ordering::SeqCst), 1);
    assert_eq!(memory.stats_of::<Shipped>("parcels").acked, 3);
    assert_eq!(memory.stats_of::<Delivered>("parcels").acked, 1);
    token.cancel();
    for handle in handles {
        handle.join().await;
    }
}

#[tokio::test]
async fn two_handlers_of_one_event_type_are_refused() {
    let bus = InMemoryBus::new().as_dyn();
    let n = Arc::default();
    let refused = Router::new("parcels")
        .handle(count::<Shipped>(&n))
        .handle(count::<Shipped>(&n))
        .spawn(&bus, &CancellationToken::new())
        .await;
    assert!(
        matches!(refused, Err(BusError::InvalidGroup { .. })),
        "{refused:?}"
    );
}

/// `parcel:shipped`: counts odd parcels; an even one is refused for good.
async fn count_odd(count: Arc<AtomicUsize>, shipped: Shipped) -> Result<(), HandlerError> {
    if shipped.0 % 2 == 0 {
        return Err(HandlerError::permanent(format!(
            "parcel {} is even",
            shipped.0
        )));
    }
    count.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_function_of_state_and_event_is_a_handler_settled_by_its_result() {
    let memory = InMemoryBus::new();
    let bus = memory.as_dyn();
    let odd = Arc::new(AtomicUsize::new(0));
    let token = CancellationToken::new();
    let handles = Router::new("parcels")
        .on(odd.clone(), count_odd)
        .spawn(&bus, &token)
        .await
        .expect("spawn");
    for n in 0..4 {
        Publisher::<Shipped>::new(bus.clone())
            .publish(&Shipped(n))
            .await
            .expect("publish");
    }
    memory.settled().await;
    assert_eq!(odd.load(Ordering::SeqCst), 2);
    let stats = memory.stats_of::<Shipped>("parcels");
    assert_eq!((stats.acked, stats.dead_lettered), (2, 2), "{stats:?}");
    token.cancel();
    for handle in handles {
        handle.join().await;
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Returned(u32);
impl Event for Returned {
    const SUBJECT: &'static str = "parcel:returned";
    fn message_id(&self) -> String {
        format!("{}:{}", Self::SUBJECT, self.0)
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Lost(u32);
impl Event for Lost {
    const SUBJECT: &'static str = "parcel:lost";
    fn message_id(&self) -> String {
        format!("{}:{}", Self::SUBJECT, self.0)
    }
}

ticketing_core::events! {
    enum Outbound {
        Shipped(Shipped),
        Delivered(Delivered),
    }
}

ticketing_core::events! {
    enum Inbound {
        Returned(Returned),
        Lost(Lost),
    }
}

#[tokio::test]
async fn two_handlers_of_several_events_in_one_group_are_refused() {
    let bus = InMemoryBus::new().as_dyn();
    let refused = Router::new("parcels")
        .on((), |(), _: Outbound| async { Ok(()) })
        .on((), |(), _: Inbound| async { Ok(()) })
        .spawn(&bus, &CancellationToken::new())
        .await;
    assert!(
        matches!(&refused, Err(BusError::InvalidGroup { reason, .. }) if reason.contains("several events")),
        "{refused:?}"
    );
}

/// A user's pipeline step: refuses (dead-letters) a message without a `tenant` header.
#[derive(Clone)]
struct RequireTenant<S>(S);

impl<S> tower::Service<ticketing_core::listener::pipeline::Incoming> for RequireTenant<S>
where
    S: tower::Service<
            ticketing_core::listener::pipeline::Incoming,
            Response = (),
            Error = HandlerError,
        >,
    S::Future: Send + 'static,
{
    type Response = ();
    type Error = HandlerError;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), HandlerError>> + Send>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), HandlerError>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, incoming: ticketing_core::listener::pipeline::Incoming) -> Self::Future {
        if incoming.headers().contains_key("tenant") {
            Box::pin(self.0.call(incoming))
        } else {
            Box::pin(async { Err(HandlerError::permanent("no tenant header")) })
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_layer_of_the_user_runs_before_the_handler_and_its_refusal_is_dead_lettered() {
    use ticketing_core::OutgoingMessage;
    let memory = InMemoryBus::new();
    let bus = memory.as_dyn();
    let handled = Arc::new(AtomicUsize::new(0));
    let token = CancellationToken::new();
    let handles = Router::new("parcels")
        .layer(tower::layer::layer_fn(RequireTenant))
        .on(
            handled.clone(),
            |handled: Arc<AtomicUsize>, _: Shipped| async move {
                handled.fetch_add(1, Ordering::SeqCst);
                Ok(())
            },
        )
        .spawn(&bus, &token)
        .await
        .expect("spawn");
    let shipped = |n: u32| OutgoingMessage::new(Shipped::SUBJECT, format!("{n}"));
    bus.publish(shipped(1).with_header("tenant", "acme"))
        .await
        .expect("publish");
    bus.publish(shipped(2)).await.expect("publish");
    memory.settled().await;
    assert_eq!(handled.load(Ordering::SeqCst), 1);
    let dead = bus.dead_letters().await.expect("dead letters");
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0].reason.contains("no tenant header"),
        "{}",
        dead[0].reason
    );
    assert_eq!(&dead[0].message.payload[..], b"2");
    token.cancel();
    for handle in handles {
        handle.join().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_handler_past_its_timeout_is_retried() {
    let memory = InMemoryBus::new();
    let bus = memory.as_dyn();
    let calls = Arc::new(AtomicUsize::new(0));
    let token = CancellationToken::new();
    let handles = Router::new("parcels")
        .options(ListenerOptions {
            timeout: Some(std::time::Duration::from_millis(100)),
            ..ListenerOptions::default()
        })
        .on(
            calls.clone(),
            |calls: Arc<AtomicUsize>, _: Shipped| async move {
                // The first call hangs past the timeout; the retry is quick.
                if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                    tokio::time::sleep(std::time::Duration::from_secs(60)).await;
                }
                Ok(())
            },
        )
        .spawn(&bus, &token)
        .await
        .expect("spawn");
    Publisher::<Shipped>::new(bus.clone())
        .publish(&Shipped(1))
        .await
        .expect("publish");
    memory.settled().await;
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    let stats = memory.stats_of::<Shipped>("parcels");
    assert_eq!(
        (stats.acked, stats.nacked, stats.dead_lettered),
        (1, 1, 0),
        "{stats:?}"
    );
    token.cancel();
    for handle in handles {
        handle.join().await;
    }
}

/// What a handler saw: the name of the span it ran in, and the trace it ran in.
type Seen = Arc<std::sync::Mutex<Vec<(Option<&'static str>, Option<String>)>>>;

/// The delivery span is made only when something records it; the publisher's trace is continued
/// either way (what the handler publishes carries it on). The one test of this binary that
/// installs a subscriber, for the whole process: the listener runs on the runtime's threads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_delivery_span_is_made_when_recorded_and_the_trace_goes_on_either_way() {
    use ticketing_core::trace::TraceContext;
    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    let memory = InMemoryBus::new();
    let bus = memory.as_dyn();
    let seen = Seen::default();
    let token = CancellationToken::new();
    let handles = Router::new("bells")
        .on(seen.clone(), |seen: Seen, _: Shipped| async move {
            let span = tracing::Span::current().metadata().map(|m| m.name());
            let trace = TraceContext::current().map(|c| c.trace_id());
            seen.lock().unwrap().push((span, trace));
            Ok(())
        })
        .spawn(&bus, &token)
        .await
        .expect("spawn");
    let caller = TraceContext::parse(&format!("00-{TRACE}-00f067aa0ba902b7-01")).unwrap();
    let publisher = Publisher::<Shipped>::new(bus.clone());
    // Nothing records spans: no span, the publisher's trace all the same.
    ticketing_core::trace::scope(caller, publisher.publish(&Shipped(1)))
        .await
        .expect("publish");
    memory.settled().await;
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_writer(std::io::sink)
        .init();
    ticketing_core::trace::scope(caller, publisher.publish(&Shipped(2)))
        .await
        .expect("publish");
    memory.settled().await;
    assert_eq!(
        *seen.lock().unwrap(),
        [
            (None, Some(TRACE.to_owned())),
            (Some("message"), Some(TRACE.to_owned())),
        ]
    );
    token.cancel();
    for handle in handles {
        handle.join().await;
    }
}
