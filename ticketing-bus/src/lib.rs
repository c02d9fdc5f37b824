//! Bus backends for [`ticketing_core`]: an in-memory semantic twin of NATS JetStream that
//! doubles as a test harness, and NATS JetStream itself.
//!
//! # Feature flags
//!
//! | feature | backend |
//! |---|---|
//! | (always) | [`memory::InMemoryBus`] |
//! | `nats` | [`nats::NatsBus`], JetStream through async-nats |
//! | `all-backends` | all of the above |
//!
//! [`BusSettings`] (serde-deserializable; [`BusSettings::choose`] for environment-style values)
//! connects an [`AnyBus`] of the configured backend; services take it as an `Arc<dyn Bus>` and
//! never name a backend.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use ticketing_bus::memory::InMemoryBus;
//! use ticketing_core::{Bus, OutgoingMessage, SubscribeOptions};
//!
//! let bus = InMemoryBus::new();
//! let mut member = bus.subscribe("ticket:created", "orders-service", SubscribeOptions::default()).await?;
//! bus.publish(OutgoingMessage::new("ticket:created", r#"{"id":"..."}"#)).await?;
//! let delivery = member.next().await.expect("open")?;
//! assert_eq!(delivery.attempt(), 1);
//! delivery.ack().await?;
//! bus.settled().await;
//! # Ok(()) }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

mod any;
pub mod memory;
#[cfg(feature = "nats")]
#[cfg_attr(docsrs, doc(cfg(feature = "nats")))]
pub mod nats;

pub use any::{AnyBus, BusBackend, BusSettings, NatsSettings, SettingsError, StreamLimits};
pub use memory::InMemoryBus;
#[cfg(feature = "nats")]
pub use nats::{NatsBus, NatsBusConfig};

/// The README's code blocks, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

/// The code blocks of the SDK's documentation pages, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../docs/sdk.md")]
pub struct SdkDocDoctests;

/// The code blocks of the consistency page, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../docs/consistency.md")]
pub struct ConsistencyDocDoctests;
