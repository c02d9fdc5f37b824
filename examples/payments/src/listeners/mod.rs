//! The listener of the payments service (queue group `payments-service`): one consumer of the
//! three order events, keeping its replica of orders and refunding charges whose order was
//! cancelled first.
//!
//! One durable consumer of `order:created`, `order:cancelled` and `order:completed` (named
//! `payments-service`) delivers an order's events in the order they were stored, so a
//! cancellation rarely overtakes its creation and waits. It needs nats-server 2.10 or later;
//! its first start on such a server begins where the service's per-subject durables of before
//! (`payments-service--order:created`, ...) left off, without replaying the history. On an
//! older server the service keeps those per-subject durables.

use ticketing_core::store::{replicate, replicate_record};
use ticketing_core::ticketing::events::{
    OrderCancelled, OrderCompleted, OrderCreated, queue_groups,
};
use ticketing_core::ticketing::payment::{PayableOrder, PaymentStatus, PaymentStore};
use ticketing_core::ticketing::reservation::OrderStatus;
use ticketing_core::{HandlerError, Id, StoreError, Version};

use crate::provider::{PaymentProvider, ProviderError};
use crate::startup::PaymentsState;

/// The queue group of every listener here.
pub const QUEUE_GROUP: &str = queue_groups::PAYMENTS_SERVICE;

ticketing_core::events! {
    /// What the payments service hears of orders.
    #[derive(Debug)]
    pub enum OrderEvent {
        /// `order:created`.
        Created(OrderCreated),
        /// `order:cancelled`.
        Cancelled(OrderCancelled),
        /// `order:completed`.
        Completed(OrderCompleted),
    }
}

/// The order events, each to its handler.
pub async fn order_event(state: PaymentsState, event: OrderEvent) -> Result<(), HandlerError> {
    match event {
        OrderEvent::Created(created) => order_created(state, created).await,
        OrderEvent::Cancelled(cancelled) => order_cancelled(state, cancelled).await,
        OrderEvent::Completed(completed) => order_completed(state, completed).await,
    }
}

/// Moves the replica's order to `status` at `version` on the versioned contract; waits while
/// the order is not known yet.
async fn moved_on(
    state: &PaymentsState,
    id: Id,
    status: OrderStatus,
    version: Version,
) -> Result<(), HandlerError> {
    replicate(&*state.orders, &id, version, |current| {
        let current =
            current.ok_or_else(|| HandlerError::wait(format!("order {id} is not known yet")))?;
        Ok(PayableOrder {
            status,
            version,
            ..current
        })
    })
    .await?;
    Ok(())
}

/// Refunds every charge of a cancelled order (a payment that lost the race with the expiry):
/// waits while an attempt is still pending, since it may yet be charged.
pub async fn refund_charges(
    payments: &dyn PaymentStore,
    provider: &dyn PaymentProvider,
    order: Id,
) -> Result<(), HandlerError> {
    let attempts = payments.for_order(order).await?;
    if attempts.iter().any(|p| p.status == PaymentStatus::Pending) {
        return Err(HandlerError::wait(format!(
            "order {order} was cancelled while a payment for it is pending"
        )));
    }
    for paid in attempts
        .iter()
        .filter(|p| p.status == PaymentStatus::Succeeded)
    {
        let Some(charge) = paid.charge_id.as_deref() else {
            continue;
        };
        match provider
            .refund(charge, &format!("refund-{}", paid.id))
            .await
        {
            Ok(()) => {}
            Err(ProviderError::Unavailable(reason)) => return Err(HandlerError::retry(reason)),
            Err(other) => return Err(HandlerError::permanent(other)),
        }
        match payments.refund(paid.id).await {
            Ok(refunded) => {
                tracing::warn!(payment = %refunded.id, %order, "refunded: the order was cancelled before it was paid");
            }
            // Another member refunded it meanwhile.
            Err(StoreError::VersionConflict { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// `order:created`: a new order in the replica (version 0, its price and buyer).
pub async fn order_created(state: PaymentsState, event: OrderCreated) -> Result<(), HandlerError> {
    let order = PayableOrder {
        id: event.id,
        user_id: event.user_id,
        price: event.ticket.price,
        status: event.status,
        version: event.version,
    };
    replicate_record(&*state.orders, order).await?;
    Ok(())
}

/// `order:cancelled`: the replica's order is cancelled; a charge already made for it is
/// refunded.
pub async fn order_cancelled(
    state: PaymentsState,
    event: OrderCancelled,
) -> Result<(), HandlerError> {
    moved_on(&state, event.id, OrderStatus::Cancelled, event.version).await?;
    // Also on a redelivery: the refund may not have happened the first time.
    refund_charges(&*state.payments, &*state.provider, event.id).await
}

/// `order:completed`: the replica's order is complete.
pub async fn order_completed(
    state: PaymentsState,
    event: OrderCompleted,
) -> Result<(), HandlerError> {
    moved_on(&state, event.id, OrderStatus::Complete, event.version).await
}
