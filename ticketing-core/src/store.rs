//! What every store backend shares: the [`StoreError`] type, versioned replicas of other
//! services' records ([`Replica`], [`ReplicaStore`] and the `find_by_event` contract, generic
//! over the record and its id) and how a change announces its events ([`Announce`]).
//!
//! # Contract
//!
//! Every backend passes the replica conformance suite (`conformance::replica`, feature
//! `conformance`):
//!
//! - **Replicas** implement a plain lookup ([`find`](ReplicaStore::find)) and a versioned write
//!   ([`apply`](ReplicaStore::apply)); the provided
//!   [`find_by_event`](ReplicaStore::find_by_event) answers with
//!   [`version::disposition_from`](crate::version::disposition_from) of the stored version:
//!   `Apply` when it holds N−1 (or nothing, for N = 0), `Duplicate` at N or later, `Gap`
//!   otherwise. [`apply`](ReplicaStore::apply) writes the record with the event's version only
//!   if the store still holds N−1 (or nothing, for 0); otherwise `VersionConflict`.
//! - **Starting mid-stream is explicit.** A replica that only hears a record's later events
//!   (a listener of `order:completed` alone, or one added long after the records were created)
//!   is built with [`ReplicaStart::FirstSeen`]: the first event it sees of a record is applied
//!   whatever its version, and the rule holds from there.
//! - **Events commit with state.** An owned record's change and the events that announce it are
//!   committed in one unit (a transaction, one document, one lock) into the backend's
//!   [outbox](crate::outbox), or not at all; each backend shows how to join its own unit.
//! - A missing record is [`StoreError::NotFound`], a taken id or key
//!   [`StoreError::AlreadyExists`], a database that cannot be reached
//!   [`StoreError::Unavailable`]; backends translate driver errors into these.
//!
//! # Example
//!
//! A replica of another service's accounts, keyed by a UUID-like string, kept on the rule by
//! [`replicate`]:
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use ticketing_core::store::{Replica, ReplicaStore, replicate};
//! use ticketing_core::{HandlerError, Version};
//!
//! #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
//! struct Account { id: String, owner: String, version: Version }
//!
//! impl Replica for Account {
//!     type Id = String;
//!     const ENTITY: &'static str = "account";
//!     fn id(&self) -> &String { &self.id }
//!     fn version(&self) -> Version { self.version }
//! }
//!
//! // In a listener of `account:renamed`: Apply writes, Duplicate acks, Gap waits.
//! async fn on_renamed(
//!     accounts: &dyn ReplicaStore<Account>,
//!     renamed: Account,
//! ) -> Result<(), HandlerError> {
//!     replicate(accounts, &renamed.id.clone(), renamed.version, |_held| Ok(renamed)).await?;
//!     Ok(())
//! }
//! ```

use std::fmt;
use std::hash::Hash;

use async_trait::async_trait;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::PublishError;
use crate::bus::{BoxError, OutgoingMessage};
use crate::listener::HandlerError;
use crate::version::{EventDisposition, ReplicaStart, Version, disposition_from};

/// What a record id must be: any `Eq + Hash + Clone + Display + serde` type — the 24-hex
/// [`Id`](crate::Id), a UUID, a `String`, an integer. Implemented for every such type.
pub trait RecordId:
    Eq + Hash + Clone + fmt::Display + fmt::Debug + Serialize + DeserializeOwned + Send + Sync + 'static
{
}

impl<T> RecordId for T where
    T: Eq
        + Hash
        + Clone
        + fmt::Display
        + fmt::Debug
        + Serialize
        + DeserializeOwned
        + Send
        + Sync
        + 'static
{
}

/// A replica record: a copy of another service's record, versioned by that service's events.
///
/// The generic stores ([`ReplicaStore`] backends) keep it as a JSON document: derive `Serialize`
/// and `Deserialize` for them.
pub trait Replica: Clone + Send + Sync + 'static {
    /// The record's id type.
    type Id: RecordId;
    /// What the record is, for messages and keys: `"ticket"`, `"account"`.
    const ENTITY: &'static str;
    /// The record's id.
    fn id(&self) -> &Self::Id;
    /// The version of the last event applied to it.
    fn version(&self) -> Version;
}

/// Implements [`Replica`] for a struct whose fields `id` and `version` are its id and the
/// version of the last event applied — what most replica records are.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use ticketing_core::store::Replica;
///
/// #[derive(Debug, Clone, Serialize, Deserialize)]
/// struct Listing { id: u32, sku: String, version: u64 }
/// ticketing_core::replica!(Listing, id: u32, entity: "listing");
///
/// let listing = Listing { id: 7, sku: "A-1".into(), version: 2 };
/// assert_eq!((*listing.id(), listing.version(), Listing::ENTITY), (7, 2, "listing"));
/// ```
#[macro_export]
macro_rules! replica {
    ($record:ty, id: $id:ty, entity: $entity:expr $(,)?) => {
        impl $crate::store::Replica for $record {
            type Id = $id;
            const ENTITY: &'static str = $entity;
            fn id(&self) -> &$id {
                &self.id
            }
            fn version(&self) -> $crate::Version {
                self.version
            }
        }
    };
}

/// What `find_by_event` found: the disposition of the event (Apply, Duplicate or Gap), the
/// record the replica holds (if any) and the event's version.
///
/// ```
/// use ticketing_core::store::{Replica, ReplicaLookup};
/// use ticketing_core::version::EventDisposition::*;
///
/// #[derive(Debug, Clone, PartialEq)]
/// struct Shelf { id: u32, version: u64 }
/// impl Replica for Shelf {
///     type Id = u32;
///     const ENTITY: &'static str = "shelf";
///     fn id(&self) -> &u32 { &self.id }
///     fn version(&self) -> u64 { self.version }
/// }
///
/// let held = Shelf { id: 7, version: 3 };
/// assert_eq!(ReplicaLookup::of(Some(held.clone()), 4).disposition, Apply);
/// assert_eq!(ReplicaLookup::of(Some(held.clone()), 3).disposition, Duplicate);
/// let gap = ReplicaLookup::of(Some(held), 9);
/// assert_eq!(gap.disposition, Gap);
/// assert!(gap.gap_error().to_string().contains("holds version 3, event is version 9"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaLookup<R> {
    /// Apply, Duplicate or Gap.
    pub disposition: EventDisposition,
    /// The record the replica holds now.
    pub current: Option<R>,
    /// The version of the event looked up.
    pub event: Version,
}

/// An event the replica should apply: what it holds now (nothing for a record it has not seen)
/// and the version to write. See [`ReplicaLookup::applicable`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applicable<R> {
    /// The record held before the event.
    pub current: Option<R>,
    /// The event's version, which the replica stores.
    pub version: Version,
}

impl<R: Replica> ReplicaLookup<R> {
    /// The lookup of an event of version `event` against the record held, for a replica that
    /// sees every record from its first event ([`ReplicaStart::FromFirst`]).
    pub fn of(current: Option<R>, event: Version) -> Self {
        Self::starting(ReplicaStart::FromFirst, current, event)
    }

    /// The lookup under a start policy: the one place the contract is applied to records.
    pub fn starting(start: ReplicaStart, current: Option<R>, event: Version) -> Self {
        ReplicaLookup {
            disposition: disposition_from(start, current.as_ref().map(Replica::version), event),
            current,
            event,
        }
    }

    /// The retryable error a listener answers a `Gap` with, naming the record and both
    /// versions.
    pub fn gap_error(&self) -> HandlerError {
        let record = match &self.current {
            Some(held) => format!("{} {}", R::ENTITY, held.id()),
            None => R::ENTITY.to_owned(),
        };
        HandlerError::gap(
            record,
            self.current.as_ref().map(Replica::version),
            self.event,
        )
    }

    /// The rule's answer as a listener's result, so a listener writes no `match`:
    /// `Apply` is `Ok(Some(..))` (go on and write), `Duplicate` is `Ok(None)` (nothing to do:
    /// acknowledge), `Gap` is the retryable [`gap_error`](Self::gap_error) (the runtime waits
    /// with capped backoff for the earlier event).
    ///
    /// ```
    /// # use ticketing_core::store::{Replica, ReplicaLookup};
    /// # #[derive(Debug, Clone, PartialEq)] struct Shelf { id: u32, version: u64 }
    /// # impl Replica for Shelf { type Id = u32; const ENTITY: &'static str = "shelf";
    /// #   fn id(&self) -> &u32 { &self.id } fn version(&self) -> u64 { self.version } }
    /// let held = Some(Shelf { id: 7, version: 3 });
    /// assert!(ReplicaLookup::of(held.clone(), 4).applicable().unwrap().is_some());
    /// assert!(ReplicaLookup::of(held.clone(), 2).applicable().unwrap().is_none());
    /// assert!(ReplicaLookup::of(held, 6).applicable().unwrap_err().is_retryable());
    /// ```
    pub fn applicable(self) -> Result<Option<Applicable<R>>, HandlerError> {
        match self.disposition {
            EventDisposition::Apply => Ok(Some(Applicable {
                current: self.current,
                version: self.event,
            })),
            EventDisposition::Duplicate => Ok(None),
            EventDisposition::Gap => Err(self.gap_error()),
        }
    }
}

/// A store of replicas of one record type, on the versioned contract. A backend implements
/// [`find`](Self::find) and [`apply`](Self::apply); [`find_by_event`](Self::find_by_event)
/// is provided, so the rule is the same everywhere.
///
/// Backends: `InMemoryReplicaStore`, `PgReplicaStore` (a JSONB document table per record
/// type), `MongoReplicaStore` (a collection per record type) in `ticketing-store`.
#[async_trait]
pub trait ReplicaStore<R: Replica>: Send + Sync + 'static {
    /// The replica held for `id`, if any.
    async fn find(&self, id: &R::Id) -> Result<Option<R>, StoreError>;

    /// Stores `record` at its version if the replica holds version − 1 (nothing, for 0; or
    /// nothing at all, whatever the version, under [`ReplicaStart::FirstSeen`]);
    /// `VersionConflict` otherwise, and nothing is written.
    async fn apply(&self, record: &R) -> Result<(), StoreError>;

    /// Where this store starts a record it has not seen. Default
    /// [`ReplicaStart::FromFirst`].
    fn start(&self) -> ReplicaStart {
        ReplicaStart::FromFirst
    }

    /// The disposition of an event of version `version` about record `id`, and the replica
    /// held.
    async fn find_by_event(
        &self,
        id: &R::Id,
        version: Version,
    ) -> Result<ReplicaLookup<R>, StoreError> {
        Ok(ReplicaLookup::starting(
            self.start(),
            self.find(id).await?,
            version,
        ))
    }

    /// The replica; `NotFound` otherwise.
    async fn get(&self, id: &R::Id) -> Result<R, StoreError> {
        self.find(id)
            .await?
            .ok_or_else(|| StoreError::not_found(R::ENTITY, id))
    }
}

/// Applies one event to a replica on the versioned contract, the whole of a replica
/// listener's work: looks the event up; on `Duplicate` returns `Ok(None)` (acknowledge); on
/// `Gap` the retryable gap error (wait); on `Apply` makes the new record with `next` from what
/// is held and [applies](ReplicaStore::apply) it. A `VersionConflict` on that write means
/// another member of the group applied the same event meanwhile: that is `Ok(Some(record))`
/// too, since the replica now holds it.
pub async fn replicate<R, S>(
    store: &S,
    id: &R::Id,
    version: Version,
    next: impl FnOnce(Option<R>) -> Result<R, HandlerError> + Send,
) -> Result<Option<R>, HandlerError>
where
    R: Replica,
    S: ReplicaStore<R> + ?Sized,
{
    let Some(applicable) = store.find_by_event(id, version).await?.applicable()? else {
        return Ok(None);
    };
    let record = next(applicable.current)?;
    match store.apply(&record).await {
        Ok(()) | Err(StoreError::VersionConflict { .. }) => Ok(Some(record)),
        Err(e) => Err(e.into()),
    }
}

/// [`replicate`] for an event that carries the whole record (the new record does not depend on
/// the one held): the write comes first, so an event in turn costs one statement instead of a
/// lookup and a write. Only a refused write is looked up, to tell a duplicate (`Ok(None)`:
/// acknowledge) from a gap (the retryable gap error: wait); an event that became applicable
/// in between is written again. The outcomes are [`replicate`]'s with `|_| Ok(record)`, except
/// that losing the race to another member that applied the same event is `Ok(None)`.
pub async fn replicate_record<R, S>(store: &S, record: R) -> Result<Option<R>, HandlerError>
where
    R: Replica,
    S: ReplicaStore<R> + ?Sized,
{
    match store.apply(&record).await {
        Ok(()) => return Ok(Some(record)),
        Err(StoreError::VersionConflict { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    let lookup = store.find_by_event(record.id(), record.version()).await?;
    if lookup.applicable()?.is_none() {
        return Ok(None);
    }
    match store.apply(&record).await {
        Ok(()) => Ok(Some(record)),
        Err(StoreError::VersionConflict { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Makes the events a change announces from the record as stored (its new version included).
/// The store commits them with the change, into its outbox: see [`crate::outbox`].
///
/// ```
/// use ticketing_core::store::Announce;
/// use ticketing_core::OutgoingMessage;
///
/// struct Shelf { id: u32, version: u64 }
/// let announce: Announce<'_, Shelf> = &|shelf: &Shelf| {
///     Ok(vec![OutgoingMessage::new("shelf:moved", "{}")
///         .with_message_id(format!("shelf:moved:{}:{}", shelf.id, shelf.version))])
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
pub fn outbox_key(entity: &str, id: impl fmt::Display) -> String {
    format!("{entity}:{id}")
}

/// What a store operation can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No record has this id (or key).
    #[error("{entity} {id} not found")]
    NotFound {
        /// `"ticket"`, `"account"`, ...
        entity: &'static str,
        /// The id or key looked up.
        id: String,
    },
    /// The id, or another unique key, is taken.
    #[error("{entity} {key} already exists")]
    AlreadyExists {
        /// `"user"`, `"account"`, ...
        entity: &'static str,
        /// The id or key.
        key: String,
    },
    /// The record is no longer at the version the write expected.
    #[error("{entity} {id} is not at version {expected}")]
    VersionConflict {
        /// `"ticket"`, `"account"`, ...
        entity: &'static str,
        /// The record id.
        id: String,
        /// The version the write expected.
        expected: Version,
    },
    /// A rule of the caller's domain refused the change; nothing was written. The domain's
    /// own error is the source: see [`rejection`](Self::rejection).
    #[error(transparent)]
    Rejected(BoxError),
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
    /// The database cannot be reached now (connection refused or reset, no connection free
    /// within the configured time); worth retrying later. Services answer 503.
    #[error("{backend} is unavailable: {source}")]
    Unavailable {
        /// `"postgres"`, `"mongo"`.
        backend: &'static str,
        /// The cause.
        source: BoxError,
    },
    /// Any other driver failure.
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

    /// The database cannot be reached.
    pub fn unavailable(backend: &'static str, source: impl Into<BoxError>) -> Self {
        StoreError::Unavailable {
            backend,
            source: source.into(),
        }
    }

    /// `NotFound` for an entity and id.
    pub fn not_found(entity: &'static str, id: impl fmt::Display) -> Self {
        StoreError::NotFound {
            entity,
            id: id.to_string(),
        }
    }

    /// `VersionConflict` for an entity, id and the version the write expected.
    pub fn conflict(entity: &'static str, id: impl fmt::Display, expected: Version) -> Self {
        StoreError::VersionConflict {
            entity,
            id: id.to_string(),
            expected,
        }
    }

    /// A domain rule refused the change.
    pub fn rejected(rule: impl Into<BoxError>) -> Self {
        StoreError::Rejected(rule.into())
    }

    /// The domain error of a [`Rejected`](Self::Rejected) change, if it is an `E`.
    pub fn rejection<E: std::error::Error + 'static>(&self) -> Option<&E> {
        match self {
            StoreError::Rejected(rule) => rule.downcast_ref::<E>(),
            _ => None,
        }
    }

    /// Whether this is `NotFound`.
    pub fn is_not_found(&self) -> bool {
        matches!(self, StoreError::NotFound { .. })
    }

    /// Whether the database could not be reached.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. })
    }
}

impl From<StoreError> for HandlerError {
    /// Conflicts, outages and backend failures are worth retrying; corrupt data, a refusing
    /// rule and an unencodable event are not.
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Corrupt { .. } | StoreError::Rejected(_) | StoreError::Encode(_) => {
                HandlerError::permanent(error)
            }
            _ => HandlerError::retry(error),
        }
    }
}

/// The record an event names, from its lookup: not found is a permanent failure with the
/// message `unknown` gives (the event is about a record that does not exist here, and a retry
/// does not make it exist); any other error converts as [`From<StoreError>`] does.
///
/// ```
/// use ticketing_core::store::known;
/// use ticketing_core::{HandlerError, StoreError};
///
/// let lookup: Result<u32, StoreError> = Err(StoreError::not_found("order", "7"));
/// let error = known(lookup, || "payment for unknown order 7".into()).unwrap_err();
/// assert!(!error.is_retryable());
/// ```
pub fn known<T>(
    lookup: Result<T, StoreError>,
    unknown: impl FnOnce() -> String,
) -> Result<T, HandlerError> {
    match lookup {
        Ok(found) => Ok(found),
        Err(StoreError::NotFound { .. }) => Err(HandlerError::permanent(unknown())),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq)]
    struct Doc {
        id: String,
        version: Version,
    }

    crate::replica!(Doc, id: String, entity: "doc");

    #[test]
    fn a_first_seen_replica_applies_a_later_version_of_an_unknown_record() {
        let lookup = ReplicaLookup::<Doc>::starting(ReplicaStart::FirstSeen, None, 5);
        assert_eq!(lookup.disposition, EventDisposition::Apply);
        let lookup = ReplicaLookup::<Doc>::of(None, 5);
        assert_eq!(lookup.disposition, EventDisposition::Gap);
    }

    #[test]
    fn a_rejection_keeps_the_domain_error() {
        #[derive(Debug, thiserror::Error)]
        #[error("shelf is full")]
        struct Full;
        let error = StoreError::rejected(Full);
        assert!(error.rejection::<Full>().is_some());
        assert_eq!(error.to_string(), "shelf is full");
        assert!(!HandlerError::from(error).is_retryable());
        assert!(HandlerError::from(StoreError::unavailable("postgres", "refused")).is_retryable());
    }
}
