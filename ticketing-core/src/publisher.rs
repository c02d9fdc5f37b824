//! Typed publishing through any [`Bus`].

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use crate::bus::{Bus, BusError, OutgoingMessage, PublishAck};
use crate::event::Event;

/// Publishes events of one type through any [`Bus`].
///
/// Each event goes out as JSON on `E::SUBJECT`, with its [`message_id`](Event::message_id) as
/// the de-duplication id, and `publish` returns once the broker stored it.
///
/// ```
/// # async fn demo(bus: std::sync::Arc<dyn ticketing_core::Bus>) -> Result<(), ticketing_core::PublishError> {
/// use ticketing_core::ticketing::events::ExpirationComplete;
/// use ticketing_core::{Id, Publisher};
///
/// let publisher = Publisher::<ExpirationComplete>::new(bus);
/// let ack = publisher.publish(&ExpirationComplete { order_id: Id::new() }).await?;
/// assert!(!ack.duplicate);
/// # Ok(()) }
/// ```
pub struct Publisher<E> {
    bus: Arc<dyn Bus>,
    _event: PhantomData<fn(&E)>,
}

/// Why a publish failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The event could not be encoded as JSON.
    #[error("could not encode {subject} event: {source}")]
    Encode {
        /// The event's subject.
        subject: &'static str,
        /// The serde error.
        source: serde_json::Error,
    },
    /// The bus did not store it.
    #[error("could not publish {subject} event: {source}")]
    Bus {
        /// The event's subject.
        subject: &'static str,
        /// The bus error.
        source: BusError,
    },
}

impl<E: Event> Publisher<E> {
    /// A publisher of `E` events through `bus`.
    pub fn new(bus: Arc<dyn Bus>) -> Self {
        Publisher {
            bus,
            _event: PhantomData,
        }
    }

    /// Encodes the event as the message the bus receives.
    pub fn encode(event: &E) -> Result<OutgoingMessage, PublishError> {
        let payload = serde_json::to_vec(event).map_err(|source| PublishError::Encode {
            subject: E::SUBJECT,
            source,
        })?;
        let id = event.message_id();
        // The envelope says what `content-type` and `ticketing-msg-id` said before it
        // (`ce-datacontenttype`, `ce-id`): they are no longer sent.
        let message =
            crate::envelope::stamp(OutgoingMessage::new(E::SUBJECT, payload), &id, E::VERSION)
                .with_message_id(id);
        let message = match event.key() {
            Some(key) => message.with_header(crate::partition::KEY, key),
            None => message,
        };
        // Encoded in a request or a handler: the event continues its trace.
        Ok(match crate::trace::TraceContext::for_outgoing() {
            Some(parent) => message.with_header(crate::trace::TRACEPARENT, parent.header()),
            None => message,
        })
    }

    /// Publishes the event; returns once the broker stored it (or recognised a duplicate).
    pub async fn publish(&self, event: &E) -> Result<PublishAck, PublishError> {
        let message = Self::encode(event)?;
        let started = tokio::time::Instant::now();
        let published = self.bus.publish(message).await;
        crate::metrics::published(E::SUBJECT, published.is_ok(), started.elapsed());
        published.map_err(|source| PublishError::Bus {
            subject: E::SUBJECT,
            source,
        })
    }
}

impl<E> Clone for Publisher<E> {
    fn clone(&self) -> Self {
        Publisher {
            bus: Arc::clone(&self.bus),
            _event: PhantomData,
        }
    }
}

impl<E: Event> fmt::Debug for Publisher<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Publisher")
            .field("subject", &E::SUBJECT)
            .finish()
    }
}
