//! Store traits, one per role, and the records they keep.
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
//! Every backend passes the [store conformance suite](crate::conformance::store):
//!
//! - **Owned records** start at version 0. An update names the version it read; the store
//!   writes only if that is still the stored version and stores that version + 1, else
//!   [`StoreError::VersionConflict`] and nothing is written. Of concurrent writers of one version
//!   exactly one wins.
//! - **Replicas** implement a plain lookup (`find`); the provided
//!   [`find_by_event`](TicketReplicaStore::find_by_event) answers with
//!   [`version::disposition`](crate::version::disposition) of the stored version: `Apply` when
//!   it holds N−1 (or nothing for N = 0), `Duplicate` at N or later, `Gap` otherwise.
//!   [`apply`](TicketReplicaStore::apply) writes the record with the event's version, only if
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
//!   [`StoreError::AlreadyExists`]; backends translate driver errors into these.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::PublishError;
use crate::bus::{BoxError, OutgoingMessage};
use crate::reservation::OrderStatus;
use crate::version::{EventDisposition, Version, disposition};
use crate::{Id, Price};

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

/// Makes the events a change announces from the record as stored (its new version included).
/// The store commits them with the change, into its outbox: see [`crate::outbox`].
///
/// ```
/// use ticketing_core::store::{Announce, Ticket};
/// use ticketing_core::OutgoingMessage;
///
/// let announce: Announce<'_, Ticket> = &|ticket: &Ticket| {
///     Ok(vec![OutgoingMessage::new("ticket:updated", ticket.title.clone())
///         .with_message_id(format!("ticket:updated:{}:{}", ticket.id, ticket.version))])
/// };
/// # let _ = announce;
/// ```
/// An event that cannot be encoded aborts the change ([`StoreError::Encode`]).
pub type Announce<'a, T> =
    &'a (dyn Fn(&T) -> Result<Vec<OutgoingMessage>, PublishError> + Send + Sync);

/// Announces nothing.
pub fn silent<T>(_: &T) -> Result<Vec<OutgoingMessage>, PublishError> {
    Ok(Vec::new())
}

/// The outbox key of a record: events of one key are published in commit order.
pub fn outbox_key(entity: &str, id: Id) -> String {
    format!("{entity}:{id}")
}

/// A replica record: a copy of another service's record, versioned by that service's events.
pub trait Replica {
    /// What the record is, for messages: `"ticket"`, `"order"`.
    const ENTITY: &'static str;
    /// The record's id.
    fn id(&self) -> Id;
    /// The version of the last event applied to it.
    fn version(&self) -> Version;
}

impl Replica for TicketReplica {
    const ENTITY: &'static str = "ticket";
    fn id(&self) -> Id {
        self.id
    }
    fn version(&self) -> Version {
        self.version
    }
}

impl Replica for OrderReplica {
    const ENTITY: &'static str = "order";
    fn id(&self) -> Id {
        self.id
    }
    fn version(&self) -> Version {
        self.version
    }
}

/// What `find_by_event` found: the [`disposition`] of the event (Apply, Duplicate or Gap),
/// the record the replica holds (if any) and the event's version.
///
/// ```
/// use ticketing_core::store::{ReplicaLookup, TicketReplica};
/// use ticketing_core::version::EventDisposition::*;
/// use ticketing_core::Id;
///
/// let held = TicketReplica { id: Id::new(), title: "t".into(), price: "5".parse().unwrap(), version: 3 };
/// assert_eq!(ReplicaLookup::of(Some(held.clone()), 4).disposition, Apply);
/// assert_eq!(ReplicaLookup::of(Some(held.clone()), 3).disposition, Duplicate);
/// let gap = ReplicaLookup::of(Some(held), 9);
/// assert_eq!(gap.disposition, Gap);
/// assert!(gap.gap_error().to_string().contains("holds version 3, event is version 9"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaLookup<T> {
    /// Apply, Duplicate or Gap.
    pub disposition: EventDisposition,
    /// The record the replica holds now.
    pub current: Option<T>,
    /// The version of the event looked up.
    pub event: Version,
}

impl<T: Replica> ReplicaLookup<T> {
    /// The lookup of an event of version `event` against the record held: the one place the
    /// contract is applied to records.
    pub fn of(current: Option<T>, event: Version) -> Self {
        ReplicaLookup {
            disposition: disposition(current.as_ref().map(Replica::version), event),
            current,
            event,
        }
    }

    /// The retryable error a listener answers a `Gap` with, naming the record and both
    /// versions.
    pub fn gap_error(&self) -> crate::HandlerError {
        let record = match &self.current {
            Some(held) => format!("{} {}", T::ENTITY, held.id()),
            None => T::ENTITY.to_owned(),
        };
        crate::HandlerError::gap(
            record,
            self.current.as_ref().map(Replica::version),
            self.event,
        )
    }
}

/// What a store operation can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No record has this id (or key).
    #[error("{entity} {id} not found")]
    NotFound {
        /// `"ticket"`, `"order"`, ...
        entity: &'static str,
        /// The id or key looked up.
        id: String,
    },
    /// The id, or another unique key, is taken.
    #[error("{entity} {key} already exists")]
    AlreadyExists {
        /// `"user"`, `"ticket"`, ...
        entity: &'static str,
        /// The id or key.
        key: String,
    },
    /// The record is no longer at the version the write expected.
    #[error("{entity} {id} is not at version {expected}")]
    VersionConflict {
        /// `"ticket"`, `"order"`, ...
        entity: &'static str,
        /// The record id.
        id: Id,
        /// The version the write expected.
        expected: Version,
    },
    /// An active order already holds the ticket.
    #[error("ticket {ticket_id} is already reserved")]
    TicketReserved {
        /// The ticket.
        ticket_id: Id,
    },
    /// The reservation rules forbid this status change.
    #[error(transparent)]
    Transition(#[from] crate::reservation::TransitionError),
    /// An event announcing the change could not be encoded; nothing was written.
    #[error(transparent)]
    Encode(#[from] PublishError),
    /// A stored value could not be read back (corrupt or foreign data).
    #[error("invalid stored {entity}: {reason}")]
    Corrupt {
        /// The entity.
        entity: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A driver or connection failure.
    #[error("{backend} error: {source}")]
    Backend {
        /// `"postgres"`, `"mongo"`.
        backend: &'static str,
        /// The cause.
        source: BoxError,
    },
}

impl StoreError {
    /// Wraps a driver error.
    pub fn backend(backend: &'static str, source: impl Into<BoxError>) -> Self {
        StoreError::Backend {
            backend,
            source: source.into(),
        }
    }

    /// `NotFound` for an entity and id.
    pub fn not_found(entity: &'static str, id: impl ToString) -> Self {
        StoreError::NotFound {
            entity,
            id: id.to_string(),
        }
    }

    /// Whether this is `NotFound`.
    pub fn is_not_found(&self) -> bool {
        matches!(self, StoreError::NotFound { .. })
    }
}

impl From<StoreError> for crate::HandlerError {
    /// Conflicts and backend failures are worth retrying; corrupt data is not.
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Corrupt { .. } | StoreError::Transition(_) | StoreError::Encode(_) => {
                crate::HandlerError::permanent(error)
            }
            _ => crate::HandlerError::retry(error),
        }
    }
}

/// Users of the auth service.
#[async_trait]
pub trait UserStore: Send + Sync + 'static {
    /// Stores a new user. `AlreadyExists` if the id is taken or the email is, ignoring case.
    async fn create(&self, user: User) -> Result<User, StoreError>;

    /// The user with this email, ignoring case.
    async fn find_by_email(&self, email: &str) -> Result<Option<User>, StoreError>;

    /// The user with this id; `NotFound` otherwise.
    async fn get(&self, id: Id) -> Result<User, StoreError>;
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
    /// (as [`OrderReplicaStore::apply`]; a replica already at that version or later is left
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

/// The tickets service's replica of orders.
///
/// A backend implements [`find`](Self::find) and [`apply`](Self::apply); the versioned
/// contract ([`find_by_event`](Self::find_by_event)) is provided.
#[async_trait]
pub trait OrderReplicaStore: Send + Sync + 'static {
    /// The replica held for `id`, if any.
    async fn find(&self, id: Id) -> Result<Option<OrderReplica>, StoreError>;

    /// Stores `order` at its version if the replica holds version − 1 (nothing, for 0);
    /// `VersionConflict` otherwise.
    async fn apply(&self, order: &OrderReplica) -> Result<(), StoreError>;

    /// The disposition of an order event of version `version`, and the replica held.
    async fn find_by_event(
        &self,
        id: Id,
        version: Version,
    ) -> Result<ReplicaLookup<OrderReplica>, StoreError> {
        Ok(ReplicaLookup::of(self.find(id).await?, version))
    }

    /// The replica; `NotFound` otherwise.
    async fn get(&self, id: Id) -> Result<OrderReplica, StoreError> {
        self.find(id)
            .await?
            .ok_or_else(|| StoreError::not_found("order replica", id))
    }
}

/// The orders service's replica of tickets.
///
/// A backend implements [`find`](Self::find) and [`apply`](Self::apply); the versioned
/// contract ([`find_by_event`](Self::find_by_event)) is provided.
#[async_trait]
pub trait TicketReplicaStore: Send + Sync + 'static {
    /// The replica held for `id`, if any.
    async fn find(&self, id: Id) -> Result<Option<TicketReplica>, StoreError>;

    /// Stores `ticket` at its version if the replica holds version − 1 (nothing, for 0);
    /// `VersionConflict` otherwise.
    async fn apply(&self, ticket: &TicketReplica) -> Result<(), StoreError>;

    /// The disposition of a ticket event of version `version`, and the replica held.
    async fn find_by_event(
        &self,
        id: Id,
        version: Version,
    ) -> Result<ReplicaLookup<TicketReplica>, StoreError> {
        Ok(ReplicaLookup::of(self.find(id).await?, version))
    }

    /// The replica; `NotFound` otherwise.
    async fn get(&self, id: Id) -> Result<TicketReplica, StoreError> {
        self.find(id)
            .await?
            .ok_or_else(|| StoreError::not_found("ticket replica", id))
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
