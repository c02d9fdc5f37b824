//! Contracts for event-driven microservices: events, the [`Bus`] a backend implements, the
//! [`Listener`] and [`Publisher`] a service uses, the versioned replica contract, store traits
//! and the reservation rules of the ticketing system.
//!
//! This crate has no drivers. Backends live in `ticketing-bus` (in-memory, NATS JetStream) and
//! `ticketing-store` (in-memory, Postgres, MongoDB); services combine them.
//!
//! # Feature flags
//!
//! | feature | what it adds |
//! |---|---|
//! | `conformance` | the [bus](conformance::bus) and store conformance suites every backend runs |
//!
//! # Example
//!
//! A listener that replicates tickets, run by the SDK's listener runtime over any bus:
//!
//! ```
//! use std::sync::Arc;
//! use async_trait::async_trait;
//! use ticketing_core::events::TicketCreated;
//! use ticketing_core::{spawn_listener, Bus, HandlerError, Listener, MessageContext};
//!
//! struct ReplicateTickets;
//!
//! #[async_trait]
//! impl Listener for ReplicateTickets {
//!     type Event = TicketCreated;
//!     fn queue_group(&self) -> &str { "orders-service" }
//!     async fn on_message(&self, ticket: TicketCreated, _: &MessageContext<'_>) -> Result<(), HandlerError> {
//!         tracing::info!(id = %ticket.id, "replicated");
//!         Ok(())
//!     }
//! }
//!
//! async fn start(bus: Arc<dyn Bus>) -> Result<(), ticketing_core::BusError> {
//!     let handle = spawn_listener(&bus, ReplicateTickets).await?;
//!     // ... on shutdown: stop taking messages, finish in-flight ones, settle them.
//!     handle.stop().await;
//!     Ok(())
//! }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod bus;
pub mod clock;
pub mod config;
pub mod event;
mod id;
pub mod listener;
pub mod metrics;
pub mod outbox;
pub mod payment;
mod price;
mod publisher;
pub mod reservation;
pub mod store;
pub mod trace;
pub mod version;

#[cfg(feature = "conformance")]
#[cfg_attr(docsrs, doc(cfg(feature = "conformance")))]
pub mod conformance;

pub use bus::{
    Acknowledger, Bus, BusError, DeadLetter, Delivery, Headers, Message, OutgoingMessage,
    PublishAck, SubscribeOptions, Subscription,
};
pub use clock::Clock;
pub use event::Event;
pub use id::{Id, InvalidId};
pub use listener::{
    HandlerError, Listener, ListenerHandle, ListenerOptions, MessageContext, RetryBackoff,
    spawn_listener, spawn_listener_with_token,
};
pub use price::{Price, PriceError};
pub use publisher::{PublishError, Publisher};
pub use reservation::OrderStatus;
pub use store::StoreError;
pub use version::{EventDisposition, Version};

/// The seven events of the ticketing system.
pub mod events {
    pub use crate::event::{
        ExpirationComplete, OrderCancelled, OrderCancelledTicket, OrderCompleted, OrderCreated,
        OrderCreatedTicket, PaymentCreated, TicketCreated, TicketUpdated, queue_groups, subjects,
    };
}
