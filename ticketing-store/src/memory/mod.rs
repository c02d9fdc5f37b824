//! In-memory stores: the whole store contract on a mutex per store, for tests and for running
//! a system with nothing installed. Cloning a store gives another handle to the same data.
//!
//! | type | what |
//! |---|---|
//! | [`InMemoryReplicaStore<R>`] | replicas of any record type, on the versioned contract |
//! | [`InMemoryOutbox`] | committed events waiting for the relay; [`append`](InMemoryOutbox::append) under your own lock joins your change |
//! | [`InMemoryDatabase`] | one service's outbox and named replica stores (and, with feature `ticketing`, the ticketing roles) |

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;

use ticketing_core::OutgoingMessage;
use ticketing_core::outbox::{Outbox, OutboxEvent, OutboxId};
use ticketing_core::store::{Replica, ReplicaStore, StoreError};
use ticketing_core::version::{EventDisposition, ReplicaStart, disposition_from};

#[cfg(feature = "ticketing")]
mod ticketing;
#[cfg(feature = "ticketing")]
#[cfg_attr(docsrs, doc(cfg(feature = "ticketing")))]
pub use ticketing::{
    InMemoryOrderReplicaStore, InMemoryOrderStore, InMemoryPayableOrderStore, InMemoryPaymentStore,
    InMemoryTicketReplicaStore, InMemoryTicketStore, InMemoryUserStore, StoreFaults, StoreWrite,
};

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Replicas of one record type in memory, on the versioned contract
/// ([`ReplicaStore`]). Clones share the records; [`starting`](Self::starting) gives a handle
/// with another [`ReplicaStart`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), ticketing_core::StoreError> {
/// use serde::{Deserialize, Serialize};
/// use ticketing_core::store::{Replica, ReplicaStore};
/// use ticketing_core::version::EventDisposition;
/// use ticketing_store::memory::InMemoryReplicaStore;
///
/// #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// struct Book { isbn: String, title: String, version: u64 }
/// impl Replica for Book {
///     type Id = String;
///     const ENTITY: &'static str = "book";
///     fn id(&self) -> &String { &self.isbn }
///     fn version(&self) -> u64 { self.version }
/// }
///
/// let books = InMemoryReplicaStore::<Book>::new();
/// let isbn = "978-0".to_string();
/// assert_eq!(books.find_by_event(&isbn, 0).await?.disposition, EventDisposition::Apply);
/// books.apply(&Book { isbn: isbn.clone(), title: "Dune".into(), version: 0 }).await?;
/// assert_eq!(books.find_by_event(&isbn, 0).await?.disposition, EventDisposition::Duplicate);
/// assert_eq!(books.find_by_event(&isbn, 2).await?.disposition, EventDisposition::Gap);
/// # Ok(()) }
/// ```
pub struct InMemoryReplicaStore<R: Replica> {
    inner: Arc<Mutex<HashMap<R::Id, R>>>,
    start: ReplicaStart,
}

impl<R: Replica> Clone for InMemoryReplicaStore<R> {
    fn clone(&self) -> Self {
        InMemoryReplicaStore {
            inner: self.inner.clone(),
            start: self.start,
        }
    }
}

impl<R: Replica> Default for InMemoryReplicaStore<R> {
    fn default() -> Self {
        InMemoryReplicaStore {
            inner: Arc::default(),
            start: ReplicaStart::FromFirst,
        }
    }
}

impl<R: Replica> fmt::Debug for InMemoryReplicaStore<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryReplicaStore")
            .field("entity", &R::ENTITY)
            .field("records", &self.len())
            .field("start", &self.start)
            .finish()
    }
}

impl<R: Replica> InMemoryReplicaStore<R> {
    /// An empty store that sees every record from its first event.
    pub fn new() -> Self {
        Self::default()
    }

    /// This store's records, starting records it has not seen as `start` says.
    pub fn starting(&self, start: ReplicaStart) -> Self {
        InMemoryReplicaStore {
            inner: self.inner.clone(),
            start,
        }
    }

    /// How many records it holds.
    pub fn len(&self) -> usize {
        lock(&self.inner).len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The records, locked: for a store that joins them (or writes them in the same critical
    /// section as its own change).
    pub fn records(&self) -> MutexGuard<'_, HashMap<R::Id, R>> {
        lock(&self.inner)
    }

    /// [`apply`](ReplicaStore::apply) on records already locked.
    pub fn apply_locked(
        &self,
        records: &mut HashMap<R::Id, R>,
        record: &R,
    ) -> Result<(), StoreError> {
        apply_checked(self.start, records, record)
    }
}

fn apply_checked<R: Replica>(
    start: ReplicaStart,
    records: &mut HashMap<R::Id, R>,
    record: &R,
) -> Result<(), StoreError> {
    let held = records.get(record.id()).map(Replica::version);
    if disposition_from(start, held, record.version()) != EventDisposition::Apply {
        return Err(StoreError::conflict(
            R::ENTITY,
            record.id(),
            record.version().saturating_sub(1),
        ));
    }
    records.insert(record.id().clone(), record.clone());
    Ok(())
}

#[async_trait]
impl<R: Replica> ReplicaStore<R> for InMemoryReplicaStore<R> {
    async fn find(&self, id: &R::Id) -> Result<Option<R>, StoreError> {
        Ok(lock(&self.inner).get(id).cloned())
    }

    async fn apply(&self, record: &R) -> Result<(), StoreError> {
        apply_checked(self.start, &mut lock(&self.inner), record)
    }

    fn start(&self) -> ReplicaStart {
        self.start
    }
}

/// The in-memory database of one service: its [outbox](Self::outbox) and its replica stores by
/// name ([`replicas`](Self::replicas)); with feature `ticketing`, also one store per ticketing
/// role. Clones share the data.
#[derive(Clone)]
pub struct InMemoryDatabase {
    outbox: InMemoryOutbox,
    replicas: Arc<Mutex<HashMap<String, Box<dyn Any + Send>>>>,
    #[cfg(feature = "ticketing")]
    roles: ticketing::Roles,
}

impl fmt::Debug for InMemoryDatabase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryDatabase")
            .field("outbox", &self.outbox.len())
            .field("replicas", &lock(&self.replicas).keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Default for InMemoryDatabase {
    fn default() -> Self {
        Self::new()
    }
}

impl InMemoryDatabase {
    /// An empty database.
    pub fn new() -> Self {
        let outbox = InMemoryOutbox::new();
        InMemoryDatabase {
            #[cfg(feature = "ticketing")]
            roles: ticketing::Roles::new(&outbox),
            outbox,
            replicas: Arc::default(),
        }
    }

    /// The outbox: a service appends its events with [`InMemoryOutbox::append`] under the lock
    /// that writes its change; hand it to a relay to publish them.
    pub fn outbox(&self) -> InMemoryOutbox {
        self.outbox.clone()
    }

    /// The replica store named `name` (the same records on every call with that name),
    /// starting records it has not seen as `start` says. A name already holding another
    /// record type is an error.
    pub fn replicas<R: Replica>(
        &self,
        name: &str,
        start: ReplicaStart,
    ) -> Result<InMemoryReplicaStore<R>, StoreError> {
        let mut replicas = lock(&self.replicas);
        let entry = replicas
            .entry(name.to_owned())
            .or_insert_with(|| Box::new(InMemoryReplicaStore::<R>::new()));
        entry
            .downcast_ref::<InMemoryReplicaStore<R>>()
            .map(|store| store.starting(start))
            .ok_or_else(|| {
                StoreError::backend(
                    "memory",
                    format!("replica store {name:?} holds another record type"),
                )
            })
    }
}

/// An outbox in memory: events committed with a state change wait here until a relay
/// ([`ticketing_core::outbox::spawn_relay`]) has published them. Clones share the events.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), ticketing_core::StoreError> {
/// use ticketing_core::OutgoingMessage;
/// use ticketing_core::outbox::Outbox;
/// use ticketing_store::memory::InMemoryOutbox;
///
/// let outbox = InMemoryOutbox::new();
/// outbox.append("ticket:1", [OutgoingMessage::new("ticket:created", "{}").with_message_id("ticket:created:1:0")]);
/// let pending = outbox.pending(256).await?;        // what a relay publishes ...
/// outbox.remove(&[pending[0].id]).await?;          // ... and forgets once the broker confirmed
/// assert!(outbox.is_empty());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
pub struct InMemoryOutbox {
    inner: Arc<OutboxInner>,
}

#[derive(Debug, Default)]
struct OutboxInner {
    state: Mutex<OutboxState>,
    wake: tokio::sync::Notify,
}

#[derive(Debug, Default)]
struct OutboxState {
    next: OutboxId,
    events: std::collections::BTreeMap<OutboxId, OutboxEvent>,
    lease: Option<(String, tokio::time::Instant)>,
}

impl InMemoryOutbox {
    /// An empty outbox.
    pub fn new() -> Self {
        Self::default()
    }

    /// Commits `messages`, in order, as events of the record `key`, and wakes the relay.
    ///
    /// This is how a change joins the outbox in memory: call it while holding the lock that
    /// writes your state (as the ticketing stores do), so that no reader sees the change
    /// without its events or the events without the change. It cannot fail.
    pub fn append(
        &self,
        key: &str,
        messages: impl IntoIterator<Item = OutgoingMessage>,
    ) -> Vec<OutboxId> {
        let ids = {
            let mut state = lock(&self.inner.state);
            let mut ids = Vec::new();
            for message in messages {
                state.next += 1;
                let id = state.next;
                state.events.insert(
                    id,
                    OutboxEvent {
                        id,
                        key: key.to_owned(),
                        message,
                    },
                );
                ids.push(id);
            }
            ids
        };
        if !ids.is_empty() {
            self.inner.wake.notify_one();
        }
        ids
    }

    /// Events waiting to be published.
    pub fn len(&self) -> usize {
        lock(&self.inner.state).events.len()
    }

    /// Whether nothing waits to be published.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl Outbox for InMemoryOutbox {
    async fn pending(&self, limit: usize) -> Result<Vec<OutboxEvent>, StoreError> {
        Ok(lock(&self.inner.state)
            .events
            .values()
            .take(limit)
            .cloned()
            .collect())
    }

    async fn remove(&self, ids: &[OutboxId]) -> Result<(), StoreError> {
        let mut state = lock(&self.inner.state);
        for id in ids {
            state.events.remove(id);
        }
        Ok(())
    }

    async fn changed(&self) {
        self.inner.wake.notified().await;
    }

    async fn lease(&self, holder: &str, ttl: std::time::Duration) -> Result<bool, StoreError> {
        let now = tokio::time::Instant::now();
        let mut state = lock(&self.inner.state);
        let free = match &state.lease {
            None => true,
            Some((current, until)) => current == holder || *until <= now,
        };
        if free {
            state.lease = Some((holder.to_owned(), now + ttl));
        }
        Ok(free)
    }
}
