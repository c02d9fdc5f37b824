//! The ticketing system's store traits, one per role, and the records they keep. The generic
//! items they build on ([`StoreError`], [`Replica`], [`ReplicaStore`], [`Announce`]) are
//! re-exported here.
//!
//! | trait | kept by | records |
//! |---|---|---|
//! | [`UserStore`] | auth | users |
//! | [`TicketStore`] | tickets (owner) | tickets |
//! | [`OrderReplicaStore`] | tickets | a replica of orders, to version-check order events |
//! | [`TicketReplicaStore`] | orders | a replica of tickets |
//! | [`OrderStore`] | orders (owner) | orders, joined with the ticket replica |
//!
//! # Contract
//!
//! Every backend passes the store conformance suite (`conformance::store`):
//!
//! - **Owned records** start at version 0. An update names the version it read; the store
//!   writes only if that is still the stored version and stores that version + 1, else
//!   [`StoreError::VersionConflict`] and nothing is written. Of concurrent writers of one version
//!   exactly one wins.
//! - **Replicas** are the generic [`ReplicaStore`]: a plain lookup (`find`); the provided
//!   [`find_by_event`](ReplicaStore::find_by_event) answers with
//!   [`version::disposition`](crate::version::disposition) of the stored version: `Apply` when
//!   it holds N−1 (or nothing for N = 0), `Duplicate` at N or later, `Gap` otherwise.
//!   [`apply`](ReplicaStore::apply) writes the record with the event's version, only if
//!   the store still holds N−1 (or nothing for 0); otherwise `VersionConflict`.
//! - **Reservation is atomic:** [`OrderStore::reserve`] creates an order only if no active
//!   order holds its ticket, enforced by the store itself (a unique index), never by a check
//!   then a write. Of any number of concurrent reservations of one ticket exactly one succeeds.
//! - **Emails are unique** compared case-insensitively, also under concurrent sign-ups.
//! - **Events commit with state.** The `*_announcing` operations take an [`Announce`]
//!   closure: the events it makes from the record as stored are committed in the same unit as
//!   the change (a transaction, one document, one lock) into the backend's
//!   [outbox](crate::outbox), or not at all. A relay publishes them afterwards. Events of one
//!   record leave the outbox in the order their changes committed.
//! - A missing record is [`StoreError::NotFound`], a taken id or email
//!   [`StoreError::AlreadyExists`], a refusing reservation rule [`StoreError::Rejected`] with a
//!   [`ReservationError`]; backends translate driver errors into these.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::Price;
use super::reservation::{OrderStatus, TransitionError};
use crate::Id;
pub use crate::store::{
    Announce, Applicable, Replica, ReplicaLookup, ReplicaStore, StoreError, outbox_key, replicate,
    silent,
};
use crate::version::Version;

/// A user of the auth service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Id.
    pub id: Id,
    /// Email as given at sign-up (trimmed); unique ignoring case.
    pub email: String,
    /// The password hash (a PHC string); never the password.
    pub password_hash: String,
}

/// A ticket, as its owner (the tickets service) keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    /// Id.
    pub id: Id,
    /// Title.
    pub title: String,
    /// Price.
    pub price: Price,
    /// The seller.
    pub user_id: Id,
    /// Version: 0 when listed, +1 per change.
    pub version: Version,
    /// The order holding it, while reserved.
    pub order_id: Option<Id>,
}

/// The tickets service's replica of an order: enough to version-check order events and to
/// know which ticket the order is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderReplica {
    /// The order id.
    pub id: Id,
    /// The ticket it is for.
    pub ticket_id: Id,
    /// Its last known status.
    pub status: OrderStatus,
    /// The version of the last applied event.
    pub version: Version,
}

/// The orders service's replica of a ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketReplica {
    /// The ticket id.
    pub id: Id,
    /// Title.
    pub title: String,
    /// Price.
    pub price: Price,
    /// The version of the last applied event.
    pub version: Version,
}

/// An order, with the replica of its ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    /// Id.
    pub id: Id,
    /// The buyer.
    pub user_id: Id,
    /// Status.
    pub status: OrderStatus,
    /// When it expires, to the millisecond.
    pub expires_at: DateTime<Utc>,
    /// Version: 0 when created, +1 per change.
    pub version: Version,
    /// The ticket, as replicated.
    pub ticket: TicketReplica,
}

/// A new order for [`OrderStore::reserve`]: status `created`, version 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrder {
    /// Id.
    pub id: Id,
    /// The buyer.
    pub user_id: Id,
    /// The ticket to reserve.
    pub ticket_id: Id,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
}

crate::replica!(TicketReplica, id: Id, entity: "ticket");

crate::replica!(OrderReplica, id: Id, entity: "order");

/// Users of the auth service.
#[async_trait]
pub trait UserStore: Send + Sync + 'static {
    /// Stores a new user. `AlreadyExists` if the id is taken or the email is, ignoring case.
    async fn create(&self, user: User) -> Result<User, StoreError>;

    /// The user with this email, ignoring case.
    async fn find_by_email(&self, email: &str) -> Result<Option<User>, StoreError>;

    /// The user with this id; `NotFound` otherwise.
    async fn get(&self, id: Id) -> Result<User, StoreError>;

    /// Counts a failed sign-in against `key` (an account, a client address) under `limit`, at
    /// `now`, where every process of the service sees it; atomic per key. Returns until when
    /// the key is refused when this failure took it past its allowance.
    async fn sign_in_failed(
        &self,
        key: &str,
        limit: FailureLimit,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// The latest time any of `keys` is refused until, if one still is at `now`.
    async fn sign_in_refused(
        &self,
        keys: &[String],
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError>;
}

/// An allowance of failures (GCRA): `allowance` at once, coming back evenly over `window`. Past
/// it, a key is refused until one more failure would be within it again (a second at least).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureLimit {
    /// Failures allowed in a burst.
    pub allowance: u32,
    /// How long the whole allowance takes to come back.
    pub window: std::time::Duration,
}

/// The failures counted against one key, as a store keeps them: the key's theoretical arrival
/// time (GCRA) and until when it is refused, in milliseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FailureCount {
    /// When the allowance is whole again.
    pub tat_ms: i64,
    /// Until when the key is refused (in the past when it is not).
    pub refused_until_ms: i64,
}

/// The latest of the refusals in `counts` still running at `now`.
pub fn latest_refusal(
    counts: impl IntoIterator<Item = FailureCount>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let now_ms = now.timestamp_millis();
    counts
        .into_iter()
        .map(|c| c.refused_until_ms)
        .filter(|until| *until > now_ms)
        .max()
        .and_then(DateTime::from_timestamp_millis)
}

impl FailureLimit {
    /// `count` after one more failure at `now_ms`.
    pub fn fail(&self, count: FailureCount, now_ms: i64) -> FailureCount {
        let window = i64::try_from(self.window.as_millis()).unwrap_or(i64::MAX / 4);
        let interval = (window / i64::from(self.allowance.max(1))).max(1);
        let tat = count.tat_ms.max(now_ms);
        let next = tat + interval;
        if next - now_ms <= window {
            FailureCount {
                tat_ms: next,
                ..count
            }
        } else {
            // Over the allowance: this failure is not counted, the key is refused.
            let wait = (next - window - now_ms).max(1000);
            FailureCount {
                tat_ms: tat,
                refused_until_ms: count.refused_until_ms.max(now_ms + wait),
            }
        }
    }

    /// Until when `after` refuses its key, if this failure (from `before`) started or moved a
    /// refusal.
    pub fn refusal(before: FailureCount, after: FailureCount) -> Option<DateTime<Utc>> {
        (after.refused_until_ms > before.refused_until_ms)
            .then(|| DateTime::from_timestamp_millis(after.refused_until_ms))
            .flatten()
    }
}

/// Tickets, kept by their owner.
#[async_trait]
pub trait TicketStore: Send + Sync + 'static {
    /// Stores a new ticket at version 0 (whatever `version` says). `AlreadyExists` if the id
    /// is taken.
    async fn create(&self, ticket: Ticket) -> Result<Ticket, StoreError> {
        self.create_announcing(ticket, &silent).await
    }

    /// [`create`](Self::create), committing the events `announce` makes of the stored ticket
    /// with it (outbox key `ticket:<id>`).
    async fn create_announcing(
        &self,
        ticket: Ticket,
        announce: Announce<'_, Ticket>,
    ) -> Result<Ticket, StoreError>;

    /// The ticket; `NotFound` otherwise.
    async fn get(&self, id: Id) -> Result<Ticket, StoreError>;

    /// Tickets no order holds, oldest first.
    async fn list_unreserved(&self) -> Result<Vec<Ticket>, StoreError>;

    /// Up to `limit` tickets no order holds, newest first; with `after` (the last ticket of
    /// the previous page), those listed after it. `NotFound` for an unknown `after`.
    async fn list_unreserved_page(
        &self,
        after: Option<Id>,
        limit: usize,
    ) -> Result<Vec<Ticket>, StoreError>;

    /// Writes title, price and order of `ticket` if the stored version is still
    /// `ticket.version`; returns the ticket at version + 1. `VersionConflict` (nothing written)
    /// if it moved on, `NotFound` if it is gone.
    async fn update(&self, ticket: &Ticket) -> Result<Ticket, StoreError> {
        self.update_announcing(ticket, &silent).await
    }

    /// [`update`](Self::update), committing the events `announce` makes of the updated ticket
    /// with it.
    async fn update_announcing(
        &self,
        ticket: &Ticket,
        announce: Announce<'_, Ticket>,
    ) -> Result<Ticket, StoreError>;

    /// A listener's change in one unit: [`update_announcing`](Self::update_announcing), and
    /// then the order event that caused it recorded in the order replica of the same database
    /// (as [`ReplicaStore::apply`]; a replica already at that version or later is left
    /// as it is). The ticket's version check guards the whole: on `VersionConflict` nothing is
    /// written. Backends without multi-record transactions write the ticket with its events
    /// first and the replica last, so a crash in between leaves the event to be redelivered
    /// and applied again (the listener finds the ticket already changed), never taken for a
    /// duplicate.
    async fn update_for_order(
        &self,
        ticket: &Ticket,
        order: &OrderReplica,
        announce: Announce<'_, Ticket>,
    ) -> Result<Ticket, StoreError>;
}

/// The tickets service's replica of orders: the generic [`ReplicaStore`] over [`OrderReplica`]
/// (implemented for every such store).
pub trait OrderReplicaStore: ReplicaStore<OrderReplica> {}
impl<S: ReplicaStore<OrderReplica> + ?Sized> OrderReplicaStore for S {}

/// The orders service's replica of tickets: the generic [`ReplicaStore`] over
/// [`TicketReplica`] (implemented for every such store). The orders store joins it.
pub trait TicketReplicaStore: ReplicaStore<TicketReplica> {}
impl<S: ReplicaStore<TicketReplica> + ?Sized> TicketReplicaStore for S {}

/// A reservation rule refused a change: the [`StoreError::Rejected`] of the ticketing stores.
///
/// ```
/// use ticketing_core::ticketing::store::ReservationError;
/// use ticketing_core::{Id, StoreError};
///
/// let error: StoreError = ReservationError::TicketReserved { ticket_id: Id::new() }.into();
/// assert!(matches!(error.rejection(), Some(ReservationError::TicketReserved { .. })));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReservationError {
    /// An active order already holds the ticket.
    #[error("ticket {ticket_id} is already reserved")]
    TicketReserved {
        /// The ticket.
        ticket_id: Id,
    },
    /// The reservation rules forbid this status change.
    #[error(transparent)]
    Transition(#[from] TransitionError),
}

impl ReservationError {
    /// The reservation rule that refused a store operation, if one did.
    pub fn of(error: &StoreError) -> Option<&ReservationError> {
        error.rejection()
    }
}

impl From<ReservationError> for StoreError {
    fn from(error: ReservationError) -> Self {
        StoreError::rejected(error)
    }
}

impl From<TransitionError> for StoreError {
    fn from(error: TransitionError) -> Self {
        ReservationError::Transition(error).into()
    }
}

/// Orders, kept by their owner, with the atomic reservation rule.
#[async_trait]
pub trait OrderStore: Send + Sync + 'static {
    /// Creates the order (status `created`, version 0) if no active order holds its ticket.
    /// `TicketReserved` if one does, `NotFound` if the ticket replica does not exist,
    /// `AlreadyExists` if the order id is taken. Atomic.
    async fn reserve(&self, order: NewOrder) -> Result<Order, StoreError> {
        self.reserve_announcing(order, &silent).await
    }

    /// [`reserve`](Self::reserve), committing the events `announce` makes of the new order
    /// with it (outbox key `order:<id>`).
    async fn reserve_announcing(
        &self,
        order: NewOrder,
        announce: Announce<'_, Order>,
    ) -> Result<Order, StoreError>;

    /// The order with its ticket; `NotFound` otherwise.
    async fn get(&self, id: Id) -> Result<Order, StoreError>;

    /// The user's orders, oldest first, with their tickets.
    async fn list_for_user(&self, user_id: Id) -> Result<Vec<Order>, StoreError>;

    /// Sets the status if the order is still at `expected_version` and the reservation rules
    /// allow the change; returns it at version + 1. Leaving the active statuses frees the
    /// ticket. `VersionConflict` (nothing written), `Transition` or `NotFound` otherwise.
    async fn set_status(
        &self,
        id: Id,
        expected_version: Version,
        status: OrderStatus,
    ) -> Result<Order, StoreError> {
        self.set_status_announcing(id, expected_version, status, &silent)
            .await
    }

    /// [`set_status`](Self::set_status), committing the events `announce` makes of the
    /// changed order with it.
    async fn set_status_announcing(
        &self,
        id: Id,
        expected_version: Version,
        status: OrderStatus,
        announce: Announce<'_, Order>,
    ) -> Result<Order, StoreError>;

    /// Whether an active order holds the ticket.
    async fn is_reserved(&self, ticket_id: Id) -> Result<bool, StoreError>;
}
