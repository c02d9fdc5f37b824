//! Reservation rules: order statuses and their transitions, which orders hold a ticket, when a
//! cancelled order releases it, and how long an order stays open.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};

use crate::Id;

/// How long an order stays open before it expires, unless configured otherwise: 15 minutes.
pub const DEFAULT_EXPIRATION_WINDOW: Duration = Duration::from_secs(15 * 60);

/// The status of an order, with the wire names of the original system.
///
/// ```text
/// created ──► awaiting:payment ──► complete
///    │  └───────────────┼─────────► complete
///    └──────────────────┴─────────► cancelled
/// ```
/// `complete` and `cancelled` are terminal. Every status but `cancelled` is *active*: an active
/// order holds its ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OrderStatus {
    /// Just created; the ticket is held while the buyer pays.
    #[serde(rename = "created")]
    Created,
    /// Payment has started.
    #[serde(rename = "awaiting:payment")]
    AwaitingPayment,
    /// Paid. The ticket stays with the order for good.
    #[serde(rename = "complete")]
    Complete,
    /// Cancelled by the buyer or expired. The ticket is free again.
    #[serde(rename = "cancelled")]
    Cancelled,
}

/// An order status change the rules forbid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransitionError {
    /// A complete order was asked to be cancelled.
    #[error("cannot cancel a completed order")]
    CompletedOrderCannotBeCancelled,
    /// Any other forbidden transition.
    #[error("an order cannot go from {from} to {to}")]
    NotAllowed {
        /// The current status.
        from: OrderStatus,
        /// The requested status.
        to: OrderStatus,
    },
}

/// What a cancel request does to an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The order becomes `cancelled`: save it (version +1) and publish `order:cancelled`.
    Cancel,
    /// The order was already cancelled: change nothing, publish nothing.
    AlreadyCancelled,
}

/// A status that is not one of the four wire names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown order status {0:?}")]
pub struct UnknownStatus(pub String);

impl OrderStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [OrderStatus; 4] = [
        OrderStatus::Created,
        OrderStatus::AwaitingPayment,
        OrderStatus::Complete,
        OrderStatus::Cancelled,
    ];

    /// The statuses that hold a ticket.
    pub const ACTIVE: [OrderStatus; 3] = [
        OrderStatus::Created,
        OrderStatus::AwaitingPayment,
        OrderStatus::Complete,
    ];

    /// The wire name (`"awaiting:payment"`).
    pub const fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Created => "created",
            OrderStatus::AwaitingPayment => "awaiting:payment",
            OrderStatus::Complete => "complete",
            OrderStatus::Cancelled => "cancelled",
        }
    }

    /// Whether an order in this status holds its ticket.
    pub const fn is_active(self) -> bool {
        !matches!(self, OrderStatus::Cancelled)
    }

    /// Whether no transition leaves this status.
    pub const fn is_terminal(self) -> bool {
        matches!(self, OrderStatus::Complete | OrderStatus::Cancelled)
    }

    /// Whether an order may go from this status to `to`.
    pub const fn can_become(self, to: OrderStatus) -> bool {
        use OrderStatus::*;
        matches!(
            (self, to),
            (Created, AwaitingPayment)
                | (Created, Complete)
                | (Created, Cancelled)
                | (AwaitingPayment, Complete)
                | (AwaitingPayment, Cancelled)
        )
    }

    /// Checks a transition, with the specific error for cancelling a complete order.
    pub fn transition(self, to: OrderStatus) -> Result<OrderStatus, TransitionError> {
        if self.can_become(to) {
            Ok(to)
        } else if self == OrderStatus::Complete && to == OrderStatus::Cancelled {
            Err(TransitionError::CompletedOrderCannotBeCancelled)
        } else {
            Err(TransitionError::NotAllowed { from: self, to })
        }
    }

    /// What cancelling an order in this status does: cancel it, nothing (already cancelled), or
    /// refuse (complete).
    pub fn cancel(self) -> Result<CancelOutcome, TransitionError> {
        match self {
            OrderStatus::Cancelled => Ok(CancelOutcome::AlreadyCancelled),
            other => other
                .transition(OrderStatus::Cancelled)
                .map(|_| CancelOutcome::Cancel),
        }
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OrderStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OrderStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

/// The release rule: on `order:cancelled`, the tickets service frees a ticket only if the
/// cancelled order is the one holding it.
pub fn releases_ticket(held_by: Option<Id>, cancelled_order: Id) -> bool {
    held_by == Some(cancelled_order)
}

/// When an order created at `created_at` expires. Timestamps are kept to the millisecond, the
/// precision of the wire format (ISO-8601 with milliseconds) and of every store.
pub fn expires_at(created_at: DateTime<Utc>, window: Duration) -> DateTime<Utc> {
    let window = chrono::Duration::from_std(window).unwrap_or(chrono::Duration::MAX);
    created_at
        .checked_add_signed(window)
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
        .trunc_subsecs(3)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn wire_names_match_the_original_system() {
        let names: Vec<String> = OrderStatus::ALL
            .iter()
            .map(|s| serde_json::to_string(s).unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "\"created\"",
                "\"awaiting:payment\"",
                "\"complete\"",
                "\"cancelled\""
            ]
        );
        for status in OrderStatus::ALL {
            assert_eq!(status.as_str().parse::<OrderStatus>().unwrap(), status);
        }
        assert!("canceled".parse::<OrderStatus>().is_err());
    }

    #[test]
    fn active_statuses_hold_the_ticket() {
        for status in OrderStatus::ALL {
            assert_eq!(status.is_active(), OrderStatus::ACTIVE.contains(&status));
        }
        assert!(!OrderStatus::Cancelled.is_active());
    }

    #[test]
    fn cancelling_follows_the_fixed_rules() {
        assert_eq!(OrderStatus::Created.cancel(), Ok(CancelOutcome::Cancel));
        assert_eq!(
            OrderStatus::AwaitingPayment.cancel(),
            Ok(CancelOutcome::Cancel)
        );
        assert_eq!(
            OrderStatus::Cancelled.cancel(),
            Ok(CancelOutcome::AlreadyCancelled)
        );
        assert_eq!(
            OrderStatus::Complete.cancel(),
            Err(TransitionError::CompletedOrderCannotBeCancelled)
        );
        assert_eq!(
            TransitionError::CompletedOrderCannotBeCancelled.to_string(),
            "cannot cancel a completed order"
        );
    }

    #[test]
    fn release_only_by_the_holding_order() {
        let (a, b) = (Id::new(), Id::new());
        assert!(releases_ticket(Some(a), a));
        assert!(!releases_ticket(Some(a), b));
        assert!(!releases_ticket(None, a));
    }

    #[test]
    fn expiry_is_the_window_after_creation_in_milliseconds() {
        let created: DateTime<Utc> = "2026-01-01T00:00:00.123456Z".parse().unwrap();
        let expires = expires_at(created, DEFAULT_EXPIRATION_WINDOW);
        assert_eq!(expires.to_rfc3339(), "2026-01-01T00:15:00.123+00:00");
    }

    fn any_status() -> impl Strategy<Value = OrderStatus> {
        proptest::sample::select(OrderStatus::ALL.to_vec())
    }

    proptest! {
        #[test]
        fn terminal_statuses_have_no_way_out(from in any_status(), to in any_status()) {
            if from.is_terminal() {
                prop_assert!(from.transition(to).is_err());
            }
        }

        #[test]
        fn no_transition_goes_back_or_stays(from in any_status(), to in any_status()) {
            let rank = |s: OrderStatus| OrderStatus::ALL.iter().position(|x| *x == s).unwrap();
            if from.can_become(to) {
                prop_assert!(rank(to) > rank(from));
                prop_assert_eq!(from.transition(to), Ok(to));
            } else {
                prop_assert!(from.transition(to).is_err());
            }
        }

        #[test]
        fn every_path_of_transitions_ends_in_a_terminal_status(steps in proptest::collection::vec(any_status(), 0..10)) {
            let mut status = OrderStatus::Created;
            for next in steps {
                if let Ok(s) = status.transition(next) {
                    status = s;
                }
            }
            // At most 2 transitions happen on any path, and terminal states absorb.
            if status.is_terminal() {
                for next in OrderStatus::ALL {
                    prop_assert!(status.transition(next).is_err());
                }
            }
        }
    }
}
