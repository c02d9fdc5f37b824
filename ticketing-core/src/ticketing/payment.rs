//! Payments: the records the payments service owns, and its replica of orders.
//!
//! Exactly one charge per order is a rule of the store, as reservations are: an order may have
//! at most one attempt that is pending or succeeded. Each attempt carries its own idempotency
//! key, stored with the pending record **before** the provider is called, so a crash between the
//! charge and the commit is repaired by calling the provider again with the same key (one
//! charge, not two). A declined attempt is closed (`Failed`), so the next one gets a new key.

use async_trait::async_trait;

use super::Price;
use super::reservation::OrderStatus;
use crate::store::{Announce, ReplicaStore, StoreError};
use crate::{Id, OutgoingMessage, Version};

/// Where a payment attempt stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PaymentStatus {
    /// Recorded, the provider called or about to be: its outcome is not known yet.
    Pending,
    /// Charged.
    Succeeded,
    /// Declined or otherwise refused by the provider; closed.
    Failed,
    /// Charged, then given back (the order was cancelled first).
    Refunded,
}

impl PaymentStatus {
    /// Every status.
    pub const ALL: [PaymentStatus; 4] = [
        PaymentStatus::Pending,
        PaymentStatus::Succeeded,
        PaymentStatus::Failed,
        PaymentStatus::Refunded,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Pending => "pending",
            PaymentStatus::Succeeded => "succeeded",
            PaymentStatus::Failed => "failed",
            PaymentStatus::Refunded => "refunded",
        }
    }

    /// The status of a stored name.
    pub fn parse(name: &str) -> Option<PaymentStatus> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Whether this attempt holds its order: no other attempt may start (pending or
    /// succeeded).
    pub fn holds_order(self) -> bool {
        matches!(self, PaymentStatus::Pending | PaymentStatus::Succeeded)
    }

    /// Whether a payment may go from this status to `to`: pending → succeeded or failed,
    /// succeeded → refunded. Nothing else.
    pub fn may_become(self, to: PaymentStatus) -> bool {
        matches!(
            (self, to),
            (PaymentStatus::Pending, PaymentStatus::Succeeded)
                | (PaymentStatus::Pending, PaymentStatus::Failed)
                | (PaymentStatus::Succeeded, PaymentStatus::Refunded)
        )
    }
}

/// One attempt to pay for an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    /// The payment id.
    pub id: Id,
    /// The order paid for.
    pub order_id: Id,
    /// What is charged: the order's price, in exact cents.
    pub amount: Price,
    /// Where it stands.
    pub status: PaymentStatus,
    /// The card token or payment method the buyer sent: kept with the pending record, so a
    /// crash between the charge and the commit is repaired by asking again with the same
    /// request and key.
    pub source: String,
    /// Sent with every call to the provider for this attempt.
    pub idempotency_key: String,
    /// The provider's charge id, once charged.
    pub charge_id: Option<String>,
    /// The provider's message, when it failed.
    pub failure: Option<String>,
    /// Incremented on every change.
    pub version: Version,
}

impl Payment {
    /// A new pending attempt for `order_id` of `amount` from `source` (the card token), with a
    /// fresh id and idempotency key.
    pub fn pending(order_id: Id, amount: Price, source: impl Into<String>) -> Payment {
        let id = Id::new();
        Payment {
            id,
            order_id,
            amount,
            status: PaymentStatus::Pending,
            source: source.into(),
            idempotency_key: format!("payment-{id}"),
            charge_id: None,
            failure: None,
            version: 0,
        }
    }

    /// The record [`PaymentStore::begin`] stores: pending at version 0, nothing charged or
    /// failed yet.
    pub fn begun(self) -> Payment {
        Payment {
            status: PaymentStatus::Pending,
            charge_id: None,
            failure: None,
            version: 0,
            ..self
        }
    }

    /// What a pending attempt becomes on `outcome` (version + 1): succeeded with the charge
    /// id, or failed with the provider's message.
    pub fn settled(&self, outcome: Outcome) -> Payment {
        let mut next = Payment {
            version: self.version + 1,
            ..self.clone()
        };
        match outcome {
            Outcome::Charged(charge) => {
                next.status = PaymentStatus::Succeeded;
                next.charge_id = Some(charge);
            }
            Outcome::Declined(message) => {
                next.status = PaymentStatus::Failed;
                next.failure = Some(message);
            }
        }
        next
    }

    /// The refunded record (version + 1).
    pub fn refunded(&self) -> Payment {
        Payment {
            status: PaymentStatus::Refunded,
            version: self.version + 1,
            ..self.clone()
        }
    }

    /// The events to commit with this record as settled: `announce`'s for a charge, none
    /// otherwise.
    pub fn announced(
        &self,
        announce: Announce<'_, Payment>,
    ) -> Result<Vec<OutgoingMessage>, StoreError> {
        if self.status == PaymentStatus::Succeeded {
            Ok(announce(self)?)
        } else {
            Ok(Vec::new())
        }
    }
}

/// How a pending attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Charged: the provider's charge id.
    Charged(String),
    /// Refused: the provider's message.
    Declined(String),
}

/// The payments service's payments.
#[async_trait]
pub trait PaymentStore: Send + Sync + 'static {
    /// Records a pending attempt (version 0). `AlreadyExists` (key: the order id) when another
    /// attempt for the same order is pending or succeeded: of concurrent attempts exactly one
    /// is recorded.
    async fn begin(&self, payment: Payment) -> Result<Payment, StoreError>;

    /// Ends a pending attempt: `Charged` → succeeded with its charge id, committing the events
    /// `announce` makes of it in the same unit; `Declined` → failed with the message (no
    /// event). `Transition`-like refusal (`VersionConflict`) when it is not pending any more.
    async fn settle_announcing(
        &self,
        id: Id,
        outcome: Outcome,
        announce: Announce<'_, Payment>,
    ) -> Result<Payment, StoreError>;

    /// Marks a succeeded payment refunded (version + 1). `VersionConflict` unless it is
    /// succeeded.
    async fn refund(&self, id: Id) -> Result<Payment, StoreError>;

    /// The payment; `NotFound` otherwise.
    async fn get(&self, id: Id) -> Result<Payment, StoreError>;

    /// Every attempt for an order, oldest first.
    async fn for_order(&self, order_id: Id) -> Result<Vec<Payment>, StoreError>;

    /// Attempts still pending, oldest first, at most `limit`: what a crash may have left
    /// between the provider's charge and the commit.
    async fn pending(&self, limit: usize) -> Result<Vec<Payment>, StoreError>;
}

/// The payments service's replica of an order: what paying for it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayableOrder {
    /// The order id.
    pub id: Id,
    /// The buyer: only they may pay.
    pub user_id: Id,
    /// The price to charge.
    pub price: Price,
    /// Its last known status.
    pub status: OrderStatus,
    /// The version of the last applied event.
    pub version: Version,
}

crate::replica!(PayableOrder, id: Id, entity: "order");

/// The payments service's replica of orders: the generic [`ReplicaStore`] over
/// [`PayableOrder`] (implemented for every such store).
pub trait PayableOrderStore: ReplicaStore<PayableOrder> {}
impl<S: ReplicaStore<PayableOrder> + ?Sized> PayableOrderStore for S {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_and_only_the_allowed_changes_are() {
        for status in PaymentStatus::ALL {
            assert_eq!(PaymentStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(PaymentStatus::parse("paid"), None);
        use PaymentStatus::*;
        let allowed: Vec<(PaymentStatus, PaymentStatus)> = PaymentStatus::ALL
            .into_iter()
            .flat_map(|from| PaymentStatus::ALL.into_iter().map(move |to| (from, to)))
            .filter(|(from, to)| from.may_become(*to))
            .collect();
        assert_eq!(
            allowed,
            vec![
                (Pending, Succeeded),
                (Pending, Failed),
                (Succeeded, Refunded)
            ]
        );
        assert!(Pending.holds_order() && Succeeded.holds_order());
        assert!(!Failed.holds_order() && !Refunded.holds_order());
    }

    #[test]
    fn each_attempt_has_its_own_idempotency_key() {
        let price: Price = "10".parse().unwrap();
        let (a, b) = (
            Payment::pending(Id::new(), price, "tok_visa"),
            Payment::pending(Id::new(), price, "tok_visa"),
        );
        assert_ne!(a.idempotency_key, b.idempotency_key);
        assert_eq!(a.status, PaymentStatus::Pending);
        assert_eq!(a.version, 0);
    }
}
