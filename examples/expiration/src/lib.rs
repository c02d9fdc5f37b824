//! The expiration service: when an order's window closes, publishes `expiration:complete`
//! (queue group `expiration-service`), and the orders service cancels the order unless it is
//! complete.
//!
//! The timers are the broker's: on `order:created` the listener naks the message with a delay
//! until `expiresAt`; the broker redelivers it then, durably (it survives a restart of this
//! service, and of nats-server with file storage), and the listener publishes. No database; its
//! port serves only the operations endpoints (`/healthz`, `/readyz`, `/metrics`).

use std::sync::Arc;

use async_trait::async_trait;
use ticketing_core::listener;
use ticketing_core::ticketing::events::{ExpirationComplete, OrderCreated, queue_groups};
use ticketing_core::{
    Bus, BusError, Clock, HandlerError, ListenerHandle, ListenerOptions, Publisher,
};
use tokio_util::sync::CancellationToken;

use ticketing_common::Service;
use ticketing_common::service::{Parts, Shared};

/// `order:created`: waits (on the broker) until the order expires, then publishes
/// `expiration:complete` with `expired`, reading the time from `clock`.
pub async fn order_created(
    (expired, clock): (Publisher<ExpirationComplete>, Clock),
    event: OrderCreated,
) -> Result<(), HandlerError> {
    let left = event.expires_at - clock.now();
    if let Ok(left) = left.to_std() {
        if !left.is_zero() {
            // Not yet: the broker hands the message back when the window closes.
            return Err(HandlerError::retry_after(
                format!("order {} expires in {left:?}", event.id),
                left,
            ));
        }
    }
    expired
        .publish(&ExpirationComplete { order_id: event.id })
        .await?;
    tracing::info!(order = %event.id, "order expired");
    Ok(())
}

/// The listener, publishing on `bus` and reading the time from `clock`.
pub fn listeners(bus: &Arc<dyn Bus>, clock: Clock) -> listener::Router {
    listener::Router::new(queue_groups::EXPIRATION_SERVICE)
        .options(options())
        .on((Publisher::new(bus.clone()), clock), order_created)
}

/// Starts the listener on `bus`, reading the time from `clock`; it stops when `token` is
/// cancelled.
pub async fn spawn_listeners(
    bus: &Arc<dyn Bus>,
    clock: Clock,
    token: &CancellationToken,
) -> Result<Vec<ListenerHandle>, BusError> {
    listeners(bus, clock).spawn(bus, token).await
}

/// Every order is waiting at once: no cap on unacknowledged messages beyond the broker's
/// memory, and many handled at a time. An early wake-up (a clock step, a broker restart) is one
/// more delivery: leave room.
fn options() -> ListenerOptions {
    ListenerOptions {
        concurrency: 16,
        prefetch: 64,
        max_ack_pending: 1_000_000,
        max_deliver: 100,
        ..ListenerOptions::default()
    }
}

ticketing_common::service_settings! {
    /// Settings of the expiration service: the common options (it uses the bus, and serves only
    /// `/healthz`, `/readyz` and `/metrics` on its port).
    pub struct Settings("expiration", "The expiration service of the ticketing system") {}
}

/// What the expiration service holds: the bus and the clock.
#[derive(Clone)]
pub struct ExpirationState {
    /// The bus.
    pub bus: Arc<dyn Bus>,
    /// The time.
    pub clock: Clock,
}

/// The expiration service: listeners only, and the operations endpoints.
pub struct Expiration;

#[async_trait]
impl Service for Expiration {
    const NAME: &'static str = "expiration";
    type Settings = Settings;
    type State = ExpirationState;

    const USES_SESSIONS: bool = false;

    async fn state_on(_settings: &Settings, shared: &Shared) -> anyhow::Result<ExpirationState> {
        Ok(ExpirationState {
            bus: shared.bus()?.as_dyn(),
            clock: shared.clock.clone(),
        })
    }

    fn parts(state: &ExpirationState) -> Parts {
        Parts::default().bus(&state.bus)
    }

    fn listeners(state: &ExpirationState) -> Option<listener::Router> {
        Some(listeners(&state.bus, state.clock.clone()))
    }
}
