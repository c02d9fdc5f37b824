//! Contracts for event-driven microservices: events bound to subjects, the [`Bus`] a backend
//! implements, the [`Listener`] and [`Publisher`] a service uses, versioned records and the
//! `find_by_event` rule over any id type ([`store::ReplicaStore`]), the transactional
//! [`outbox`] and its relay — and, beside them, the ticketing domain built on them.
//!
//! This crate has no drivers. Backends live in `ticketing-bus` (in-memory, NATS JetStream) and
//! `ticketing-store` (in-memory, Postgres, MongoDB); services combine them.
//!
//! # Feature flags
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `ticketing` | on | the ticketing domain (`ticketing_core::ticketing`): its events, reservation rules, prices, payments and store roles |
//! | `conformance` | off | the bus, replica and outbox conformance suites every backend runs (and the ticketing store suites, with `ticketing`) |
//!
//! With `default-features = false` the crate has no ticket, order or payment in it: a service of
//! another domain uses the same contracts. Start with the guide, [`guide`].
//!
//! # Example
//!
//! A listener of a user's own event, run by the SDK's listener runtime over any bus:
//!
//! ```
//! use std::sync::Arc;
//! use async_trait::async_trait;
//! use serde::{Deserialize, Serialize};
//! use ticketing_core::{spawn_listener, Bus, Event, HandlerError, Listener, MessageContext};
//!
//! #[derive(Debug, Serialize, Deserialize)]
//! struct InvoiceSent { invoice: String }
//!
//! impl Event for InvoiceSent {
//!     const SUBJECT: &'static str = "invoice:sent";
//!     fn message_id(&self) -> String { format!("{}:{}", Self::SUBJECT, self.invoice) }
//! }
//!
//! struct RecordInvoices;
//!
//! #[async_trait]
//! impl Listener for RecordInvoices {
//!     type Event = InvoiceSent;
//!     fn queue_group(&self) -> &str { "ledger-service" }
//!     async fn on_message(&self, sent: InvoiceSent, _: &MessageContext<'_>) -> Result<(), HandlerError> {
//!         tracing::info!(invoice = %sent.invoice, "recorded");
//!         Ok(())
//!     }
//! }
//!
//! async fn start(bus: Arc<dyn Bus>) -> Result<(), ticketing_core::BusError> {
//!     let handle = spawn_listener(&bus, RecordInvoices).await?;
//!     // ... on shutdown: stop taking messages, finish in-flight ones, settle them.
//!     handle.stop().await;
//!     Ok(())
//! }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod bus;
pub mod clock;
pub mod config;
pub mod envelope;
pub mod event;
pub mod guide;
mod id;
pub mod listener;
pub mod metrics;
pub mod outbox;
pub mod partition;
mod publisher;
pub mod request;
pub mod store;
mod task;
pub mod trace;
pub mod version;

#[cfg(feature = "ticketing")]
#[cfg_attr(docsrs, doc(cfg(feature = "ticketing")))]
pub mod ticketing;

#[cfg(feature = "conformance")]
#[cfg_attr(docsrs, doc(cfg(feature = "conformance")))]
pub mod conformance;

pub use bus::{
    Acknowledger, Bus, BusError, DeadLetter, Delivery, Headers, IncomingRequest, Message,
    OutgoingMessage, PublishAck, Replier, Reply, Responder, SubscribeOptions, Subscription,
};
pub use clock::Clock;
pub use event::Event;
pub use id::{Id, InvalidId};
pub use listener::{
    Handler, HandlerError, Listener, ListenerHandle, ListenerOptions, MessageContext, RetryBackoff,
    spawn_listener, spawn_listener_with_token,
};
pub use publisher::{PublishError, Publisher};
pub use request::{Request, RequestError, Requester, ResponderHandle, spawn_responder};
pub use store::{Replica, ReplicaStore, StoreError};
pub use version::{EventDisposition, ReplicaStart, Version};
