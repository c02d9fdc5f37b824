//! Failures injected into the in-memory ticketing stores, as a real database produces them.

#[allow(clippy::wildcard_imports)]
use super::*;

/// A write of the in-memory ticketing stores that a fault can be injected into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreWrite {
    /// [`UserStore::create`].
    UserCreate,
    /// [`TicketStore::create_announcing`] (and `create`).
    TicketCreate,
    /// [`TicketStore::update_announcing`] (and `update`).
    TicketUpdate,
    /// [`TicketStore::update_for_order`].
    TicketUpdateForOrder,
    /// [`OrderStore::reserve_announcing`] (and `reserve`).
    OrderReserve,
    /// [`OrderStore::set_status_announcing`] (and `set_status`).
    OrderSetStatus,
    /// [`PaymentStore::begin`].
    PaymentBegin,
    /// [`PaymentStore::settle_announcing`].
    PaymentSettle,
    /// [`PaymentStore::refund`].
    PaymentRefund,
}

/// Failures to inject into an [`InMemoryDatabase`](crate::memory::InMemoryDatabase)'s
/// ticketing stores, as a real database produces them: an update that keeps losing its version
/// check to another writer, a connection lost in the middle of a commit. A test arms one with
/// [`fail`](Self::fail); the store answers the next calls of that write with the error, before
/// it changes anything, and [`calls`](Self::calls) tells how often each write was asked for.
/// Clones share the faults; every store of one database shares its database's.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use ticketing_core::ticketing::store::{Ticket, TicketStore};
/// use ticketing_core::{Id, StoreError};
/// use ticketing_store::memory::{InMemoryDatabase, StoreWrite};
///
/// let database = InMemoryDatabase::new();
/// let faults = database.faults();
/// faults.fail(StoreWrite::TicketUpdate, 1, || {
///     StoreError::backend("postgres", "connection reset in the middle of the commit")
/// });
/// let tickets = database.tickets();
/// let ticket = Ticket {
///     id: Id::new(),
///     title: "Concert".into(),
///     price: "20".parse().unwrap(),
///     user_id: Id::new(),
///     version: 0,
///     order_id: None,
/// };
/// let ticket = tickets.create(ticket).await.unwrap();
/// assert!(tickets.update(&ticket).await.is_err(), "the armed failure");
/// assert_eq!(tickets.update(&ticket).await.unwrap().version, 1, "then as before");
/// assert_eq!(faults.calls(StoreWrite::TicketUpdate), 2);
/// # }
/// ```
#[derive(Clone, Default)]
pub struct StoreFaults {
    table: Arc<Mutex<Table>>,
}

type MakeError = Arc<dyn Fn() -> StoreError + Send + Sync>;

#[derive(Default)]
struct Table {
    /// The armed faults: how many calls are left to fail, and the error they fail with.
    armed: HashMap<StoreWrite, (u32, MakeError)>,
    calls: HashMap<StoreWrite, u64>,
}

impl StoreFaults {
    /// The next `times` calls of `write` fail with the error `error` makes (`u32::MAX`: every
    /// call from now on), changing nothing. Arming a write again replaces its fault.
    pub fn fail(
        &self,
        write: StoreWrite,
        times: u32,
        error: impl Fn() -> StoreError + Send + Sync + 'static,
    ) {
        let mut table = lock(&self.table);
        if times == 0 {
            table.armed.remove(&write);
        } else {
            table.armed.insert(write, (times, Arc::new(error)));
        }
    }

    /// How many times `write` was called on this database's stores, failed or not.
    pub fn calls(&self, write: StoreWrite) -> u64 {
        lock(&self.table).calls.get(&write).copied().unwrap_or(0)
    }

    /// Counts a call of `write`; its injected failure, if one is armed.
    pub(super) fn check(&self, write: StoreWrite) -> Result<(), StoreError> {
        let mut table = lock(&self.table);
        *table.calls.entry(write).or_default() += 1;
        let Some((left, error)) = table.armed.get_mut(&write) else {
            return Ok(());
        };
        let error = error();
        if *left != u32::MAX {
            *left -= 1;
            if *left == 0 {
                table.armed.remove(&write);
            }
        }
        Err(error)
    }
}

impl std::fmt::Debug for StoreFaults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let table = lock(&self.table);
        f.debug_struct("StoreFaults")
            .field("armed", &table.armed.keys().collect::<Vec<_>>())
            .field("calls", &table.calls)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lost() -> StoreError {
        StoreError::backend("memory", "lost")
    }

    #[test]
    fn a_fault_fails_its_calls_then_leaves_and_every_call_is_counted() {
        let faults = StoreFaults::default();
        faults.fail(StoreWrite::OrderReserve, 2, lost);
        assert!(faults.check(StoreWrite::OrderReserve).is_err());
        assert!(
            faults.check(StoreWrite::OrderSetStatus).is_ok(),
            "only its write"
        );
        assert!(faults.check(StoreWrite::OrderReserve).is_err());
        assert!(faults.check(StoreWrite::OrderReserve).is_ok(), "used up");
        assert_eq!(faults.calls(StoreWrite::OrderReserve), 3);
        assert_eq!(faults.calls(StoreWrite::PaymentBegin), 0);
    }

    #[test]
    fn a_fault_for_ever_stays_until_it_is_disarmed() {
        let faults = StoreFaults::default();
        faults.fail(StoreWrite::UserCreate, u32::MAX, lost);
        for _ in 0..100 {
            assert!(faults.check(StoreWrite::UserCreate).is_err());
        }
        faults.fail(StoreWrite::UserCreate, 0, lost);
        assert!(faults.check(StoreWrite::UserCreate).is_ok());
    }
}
