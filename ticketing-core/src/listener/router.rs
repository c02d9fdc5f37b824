//! A service's listeners registered on one router: the queue group and the options are given
//! once, each [`Handler`] adds the event type it handles (Watermill's `AddHandler`, a
//! MassTransit receive endpoint).
//!
//! ```
//! use std::sync::Arc;
//! use async_trait::async_trait;
//! use serde::{Deserialize, Serialize};
//! use ticketing_core::listener::{Handler, Router};
//! use ticketing_core::{Bus, Event, HandlerError, ListenerOptions, MessageContext};
//! use tokio_util::sync::CancellationToken;
//!
//! #[derive(Debug, Serialize, Deserialize)]
//! struct ParcelShipped { parcel: String }
//! impl Event for ParcelShipped {
//!     const SUBJECT: &'static str = "parcel:shipped";
//!     fn message_id(&self) -> String { format!("{}:{}", Self::SUBJECT, self.parcel) }
//! }
//!
//! struct Notify;
//!
//! #[async_trait]
//! impl Handler for Notify {
//!     type Event = ParcelShipped;
//!     async fn handle(&self, shipped: ParcelShipped, _: &MessageContext<'_>) -> Result<(), HandlerError> {
//!         tracing::info!(parcel = %shipped.parcel, "notified");
//!         Ok(())
//!     }
//! }
//!
//! async fn start(bus: &Arc<dyn Bus>, token: &CancellationToken) -> Result<(), ticketing_core::BusError> {
//!     let listeners = Router::new("notifications-service")
//!         .options(ListenerOptions::default())
//!         .handle(Notify)
//!         .spawn(bus, token)
//!         .await?;
//!     # let _ = listeners;
//!     Ok(())
//! }
//! ```

use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use super::pipeline::{Incoming, Pipe, PipeLayer};
use super::runtime::{ListenerHandle, spawn_with_layers};
use super::{HandlerError, Listener, ListenerOptions, MessageContext};
use crate::bus::{Bus, BusError};
use crate::event::Events;

/// What a service does with one event type: a [`Listener`] without its queue group and
/// options, which the [`Router`] it is registered on gives.
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    /// The event handled: an [`Event`](crate::Event), or an enum of events
    /// ([`events!`](crate::events)).
    type Event: Events;

    /// Handles one event; the runtime settles the message by the result, as for
    /// [`Listener::on_message`].
    async fn handle(
        &self,
        event: Self::Event,
        ctx: &MessageContext<'_>,
    ) -> Result<(), HandlerError>;
}

/// A service's listeners: one queue group (also the durable name of each subject's consumer:
/// renaming it replays the history), default options, one handler per event type.
#[must_use = "a router does nothing until it is spawned"]
pub struct Router {
    group: Arc<str>,
    source: Option<&'static str>,
    layers: Vec<PipeLayer>,
    options: ListenerOptions,
    routes: Vec<Box<dyn Route>>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("group", &self.group)
            .field("subjects", &self.subjects())
            .finish_non_exhaustive()
    }
}

impl Router {
    /// A router for the queue group `group`, with the default [`ListenerOptions`].
    pub fn new(group: impl Into<Arc<str>>) -> Self {
        Router {
            group: group.into(),
            source: None,
            layers: Vec::new(),
            options: ListenerOptions::default(),
            routes: Vec::new(),
        }
    }

    /// Names the service the handlers belong to (all of them, whenever registered): the
    /// `ce-source` of the events they publish (see [`envelope`](crate::envelope)); by default
    /// the process's.
    pub fn source(mut self, source: &'static str) -> Self {
        self.source = Some(source);
        self
    }

    /// Adds `layer` to the pipeline of every handler of the router (whenever registered):
    /// inside the settle step, around the timeout, panic catching, decoding and the handler;
    /// layers added first are outermost. See [`pipeline`](super::pipeline), which shows one.
    pub fn layer<L>(mut self, layer: L) -> Self
    where
        L: tower::Layer<Pipe> + Send + Sync + 'static,
        L::Service: tower::Service<Incoming, Response = (), Error = HandlerError>
            + Clone
            + Send
            + Sync
            + 'static,
        <L::Service as tower::Service<Incoming>>::Future: Send + 'static,
    {
        self.layers
            .push(Arc::new(move |pipe: Pipe| Pipe::new(layer.layer(pipe))));
        self
    }

    /// The options of every handler registered after this call without options of its own.
    pub fn options(mut self, options: ListenerOptions) -> Self {
        self.options = options;
        self
    }

    /// Sets [`ListenerOptions::ordered`] (per-key order) on every handler, those registered
    /// so far and those after; the other options stay each handler's.
    pub fn ordered(mut self, ordered: bool) -> Self {
        self.options.ordered = ordered;
        for route in &mut self.routes {
            route.set_ordered(ordered);
        }
        self
    }

    /// Sets [`ListenerOptions::ordered`] on the handlers registered so far whose subjects
    /// `which` picks (a listener of several events of one record, say), and clears it on the
    /// others.
    pub fn ordered_if(mut self, which: impl Fn(&'static [&'static str]) -> bool) -> Self {
        for route in &mut self.routes {
            let ordered = which(route.subjects());
            route.set_ordered(ordered);
        }
        self
    }

    /// Registers `handler` for its event type, with the router's options.
    pub fn handle<H: Handler>(self, handler: H) -> Self {
        let options = self.options;
        self.handle_with(handler, options)
    }

    /// Registers `handler` for its event type, with options of its own.
    pub fn handle_with<H: Handler>(mut self, handler: H, options: ListenerOptions) -> Self {
        self.routes.push(Box::new(Routed {
            handler,
            group: self.group.clone(),
            source: None,
            options,
        }));
        self
    }

    /// Registers an async function of the service's state and the event, for that event type,
    /// with the router's options: the handler as axum writes one. Each message calls it with a
    /// clone of `state` (keep it cheap to clone: `Arc`s). For the [`MessageContext`], implement
    /// [`Handler`] instead.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use serde::{Deserialize, Serialize};
    /// # use ticketing_core::{Event, HandlerError};
    /// # use ticketing_core::listener::Router;
    /// # #[derive(Debug, Serialize, Deserialize)]
    /// # struct ParcelShipped { parcel: String }
    /// # impl Event for ParcelShipped {
    /// #     const SUBJECT: &'static str = "parcel:shipped";
    /// #     fn message_id(&self) -> String { format!("{}:{}", Self::SUBJECT, self.parcel) }
    /// # }
    /// /// `parcel:shipped`: counts the parcels.
    /// async fn shipped(count: Arc<std::sync::atomic::AtomicU64>, _: ParcelShipped) -> Result<(), HandlerError> {
    ///     count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    ///     Ok(())
    /// }
    ///
    /// let router = Router::new("parcels-service").on(Arc::default(), shipped);
    /// assert_eq!(router.subjects(), ["parcel:shipped"]);
    /// ```
    pub fn on<S, E, F, Fut>(self, state: S, handler: F) -> Self
    where
        S: Clone + Send + Sync + 'static,
        E: Events,
        F: Fn(S, E) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        self.handle(HandlerFn {
            state,
            handler,
            event: PhantomData,
        })
    }

    /// The queue group.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// The subjects handled, in registration order (an enum of events: each of its subjects).
    pub fn subjects(&self) -> Vec<&'static str> {
        self.routes
            .iter()
            .flat_map(|r| r.subjects())
            .copied()
            .collect()
    }

    /// Subscribes every handler and runs each as a listener until `token` is cancelled (each on
    /// a child token). Two handlers of one event type are refused: they would be two members of
    /// one durable consumer, each seeing part of the messages.
    pub async fn spawn(
        self,
        bus: &Arc<dyn Bus>,
        token: &CancellationToken,
    ) -> Result<Vec<ListenerHandle>, BusError> {
        let subjects = self.subjects();
        if let Some(twice) = subjects
            .iter()
            .enumerate()
            .find_map(|(i, s)| subjects[..i].contains(s).then_some(*s))
        {
            return Err(BusError::InvalidGroup {
                group: format!("{} ({twice})", self.group),
                reason: "two handlers of one event type in one queue group",
            });
        }
        if self
            .routes
            .iter()
            .filter(|r| r.subjects().len() > 1)
            .count()
            > 1
        {
            return Err(BusError::InvalidGroup {
                group: self.group.to_string(),
                reason: "two handlers of several events in one queue group (the consumer of several subjects is named after the group): make them one enum",
            });
        }
        let mut handles = Vec::with_capacity(self.routes.len());
        for route in self.routes {
            match route
                .spawn(bus, token.child_token(), self.source, &self.layers)
                .await
            {
                Ok(handle) => handles.push(handle),
                Err(error) => {
                    for handle in handles {
                        handle.stop().await;
                    }
                    return Err(error);
                }
            }
        }
        Ok(handles)
    }
}

/// An async function of (state, event) as a [`Handler`].
struct HandlerFn<S, F, E> {
    state: S,
    handler: F,
    event: PhantomData<fn(E)>,
}

#[async_trait]
impl<S, E, F, Fut> Handler for HandlerFn<S, F, E>
where
    S: Clone + Send + Sync + 'static,
    E: Events,
    F: Fn(S, E) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
{
    type Event = E;

    async fn handle(&self, event: E, _: &MessageContext<'_>) -> Result<(), HandlerError> {
        (self.handler)(self.state.clone(), event).await
    }
}

/// A handler bound to its router's group and options: a listener.
struct Routed<H> {
    handler: H,
    group: Arc<str>,
    source: Option<&'static str>,
    options: ListenerOptions,
}

#[async_trait]
impl<H: Handler> Listener for Routed<H> {
    type Event = H::Event;

    fn queue_group(&self) -> &str {
        &self.group
    }

    fn options(&self) -> ListenerOptions {
        self.options
    }

    async fn on_message(
        &self,
        event: H::Event,
        ctx: &MessageContext<'_>,
    ) -> Result<(), HandlerError> {
        match self.source {
            Some(source) => {
                crate::envelope::with_source(source, self.handler.handle(event, ctx)).await
            }
            None => self.handler.handle(event, ctx).await,
        }
    }
}

#[async_trait]
trait Route: Send {
    fn subjects(&self) -> &'static [&'static str];
    fn set_ordered(&mut self, ordered: bool);
    async fn spawn(
        self: Box<Self>,
        bus: &Arc<dyn Bus>,
        token: CancellationToken,
        source: Option<&'static str>,
        layers: &[PipeLayer],
    ) -> Result<ListenerHandle, BusError>;
}

#[async_trait]
impl<H: Handler> Route for Routed<H> {
    fn subjects(&self) -> &'static [&'static str] {
        H::Event::SUBJECTS
    }

    fn set_ordered(&mut self, ordered: bool) {
        self.options.ordered = ordered;
    }

    async fn spawn(
        mut self: Box<Self>,
        bus: &Arc<dyn Bus>,
        token: CancellationToken,
        source: Option<&'static str>,
        layers: &[PipeLayer],
    ) -> Result<ListenerHandle, BusError> {
        self.source = source;
        spawn_with_layers(bus, Arc::new(*self), token, layers).await
    }
}
