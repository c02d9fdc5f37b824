//! The listeners of the payments service (queue group `payments-service`), keeping its replica
//! of orders and refunding charges whose order was cancelled first.

use std::sync::Arc;

use async_trait::async_trait;
use ticketing_core::store::replicate;
use ticketing_core::ticketing::events::{
    OrderCancelled, OrderCompleted, OrderCreated, queue_groups,
};
use ticketing_core::ticketing::payment::{
    PayableOrder, PayableOrderStore, PaymentStatus, PaymentStore,
};
use ticketing_core::ticketing::reservation::OrderStatus;
use ticketing_core::{Handler, HandlerError, Id, MessageContext, StoreError};

use crate::provider::{PaymentProvider, ProviderError};

/// The queue group of every listener here.
pub const QUEUE_GROUP: &str = queue_groups::PAYMENTS_SERVICE;

/// The replica's order at `status` and `version`; waits while the order is not known yet.
fn moved_on(
    current: Option<PayableOrder>,
    id: Id,
    status: OrderStatus,
    version: u64,
) -> Result<PayableOrder, HandlerError> {
    let current =
        current.ok_or_else(|| HandlerError::wait(format!("order {id} is not known yet")))?;
    Ok(PayableOrder {
        status,
        version,
        ..current
    })
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
pub struct OrderCreatedListener {
    /// The replica of orders.
    pub orders: Arc<dyn PayableOrderStore>,
}

#[async_trait]
impl Handler for OrderCreatedListener {
    type Event = OrderCreated;

    async fn handle(
        &self,
        event: OrderCreated,
        _ctx: &MessageContext<'_>,
    ) -> Result<(), HandlerError> {
        replicate(&*self.orders, &event.id, event.version, |_| {
            Ok(PayableOrder {
                id: event.id,
                user_id: event.user_id,
                price: event.ticket.price,
                status: event.status,
                version: event.version,
            })
        })
        .await
        .map(|_| ())
    }
}

/// `order:cancelled`: the replica's order is cancelled; a charge already made for it is
/// refunded.
pub struct OrderCancelledListener {
    /// The replica of orders.
    pub orders: Arc<dyn PayableOrderStore>,
    /// Payments.
    pub payments: Arc<dyn PaymentStore>,
    /// The provider, for refunds.
    pub provider: Arc<dyn PaymentProvider>,
}

#[async_trait]
impl Handler for OrderCancelledListener {
    type Event = OrderCancelled;

    async fn handle(
        &self,
        event: OrderCancelled,
        _ctx: &MessageContext<'_>,
    ) -> Result<(), HandlerError> {
        replicate(&*self.orders, &event.id, event.version, |current| {
            moved_on(current, event.id, OrderStatus::Cancelled, event.version)
        })
        .await?;
        // Also on a redelivery: the refund may not have happened the first time.
        refund_charges(&*self.payments, &*self.provider, event.id).await
    }
}

/// `order:completed`: the replica's order is complete.
pub struct OrderCompletedListener {
    /// The replica of orders.
    pub orders: Arc<dyn PayableOrderStore>,
}

#[async_trait]
impl Handler for OrderCompletedListener {
    type Event = OrderCompleted;

    async fn handle(
        &self,
        event: OrderCompleted,
        _ctx: &MessageContext<'_>,
    ) -> Result<(), HandlerError> {
        replicate(&*self.orders, &event.id, event.version, |current| {
            moved_on(current, event.id, OrderStatus::Complete, event.version)
        })
        .await
        .map(|_| ())
    }
}
