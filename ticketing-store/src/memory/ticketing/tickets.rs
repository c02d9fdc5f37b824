//! Tickets in memory, their events appended to the outbox under the tickets' lock.

#[allow(clippy::wildcard_imports)]
use super::*;

/// Tickets in memory, with the outbox their events are committed to and the order replica
/// [`update_for_order`](TicketStore::update_for_order) records into.
#[derive(Debug, Clone, Default)]
pub struct InMemoryTicketStore {
    inner: Arc<Mutex<Tickets>>,
    outbox: InMemoryOutbox,
    order_replicas: InMemoryOrderReplicaStore,
    pub(super) faults: StoreFaults,
}

#[derive(Debug, Default)]
struct Tickets {
    next: u64,
    rows: HashMap<Id, (u64, Ticket)>,
}

impl InMemoryTicketStore {
    /// An empty store with an outbox and an order replica of its own.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store committing its events to `outbox` and recording order events in
    /// `order_replicas`.
    pub fn with(outbox: &InMemoryOutbox, order_replicas: &InMemoryOrderReplicaStore) -> Self {
        InMemoryTicketStore {
            inner: Arc::default(),
            outbox: outbox.clone(),
            order_replicas: order_replicas.clone(),
            faults: StoreFaults::default(),
        }
    }

    /// The outbox events are committed to.
    pub fn outbox(&self) -> InMemoryOutbox {
        self.outbox.clone()
    }

    /// Writes the ticket and its events under the store's lock.
    fn write(
        &self,
        tickets: &mut Tickets,
        ticket: &Ticket,
        announce: Announce<'_, Ticket>,
    ) -> Result<Ticket, StoreError> {
        let (_, stored) = tickets
            .rows
            .get_mut(&ticket.id)
            .ok_or_else(|| StoreError::not_found("ticket", ticket.id))?;
        if stored.version != ticket.version {
            return Err(StoreError::conflict("ticket", ticket.id, ticket.version));
        }
        let updated = Ticket {
            title: ticket.title.clone(),
            price: ticket.price,
            order_id: ticket.order_id,
            version: stored.version + 1,
            ..stored.clone()
        };
        let events = announce(&updated)?;
        *stored = updated.clone();
        self.outbox
            .append(&outbox_key("ticket", updated.id), events);
        Ok(updated)
    }
}

#[async_trait]
impl TicketStore for InMemoryTicketStore {
    async fn create_announcing(
        &self,
        mut ticket: Ticket,
        announce: Announce<'_, Ticket>,
    ) -> Result<Ticket, StoreError> {
        self.faults.check(StoreWrite::TicketCreate)?;
        let mut tickets = lock(&self.inner);
        if tickets.rows.contains_key(&ticket.id) {
            return Err(StoreError::AlreadyExists {
                entity: "ticket",
                key: ticket.id.to_string(),
            });
        }
        ticket.version = 0;
        let events = announce(&ticket)?;
        tickets.next += 1;
        let seq = tickets.next;
        tickets.rows.insert(ticket.id, (seq, ticket.clone()));
        self.outbox.append(&outbox_key("ticket", ticket.id), events);
        Ok(ticket)
    }

    async fn get(&self, id: Id) -> Result<Ticket, StoreError> {
        lock(&self.inner)
            .rows
            .get(&id)
            .map(|(_, t)| t.clone())
            .ok_or_else(|| StoreError::not_found("ticket", id))
    }

    async fn list_unreserved(&self) -> Result<Vec<Ticket>, StoreError> {
        let tickets = lock(&self.inner);
        let mut free: Vec<&(u64, Ticket)> = tickets
            .rows
            .values()
            .filter(|(_, t)| t.order_id.is_none())
            .collect();
        free.sort_by_key(|(seq, _)| *seq);
        Ok(free.into_iter().map(|(_, t)| t.clone()).collect())
    }

    async fn list_unreserved_page(
        &self,
        after: Option<Id>,
        limit: usize,
    ) -> Result<Vec<Ticket>, StoreError> {
        let tickets = lock(&self.inner);
        let before = match after {
            Some(id) => match tickets.rows.get(&id) {
                Some((seq, _)) => *seq,
                None => return Err(StoreError::not_found("ticket", id)),
            },
            None => u64::MAX,
        };
        let mut free: Vec<&(u64, Ticket)> = tickets
            .rows
            .values()
            .filter(|(seq, t)| t.order_id.is_none() && *seq < before)
            .collect();
        free.sort_by_key(|(seq, _)| std::cmp::Reverse(*seq));
        Ok(free
            .into_iter()
            .take(limit)
            .map(|(_, t)| t.clone())
            .collect())
    }

    async fn update_announcing(
        &self,
        ticket: &Ticket,
        announce: Announce<'_, Ticket>,
    ) -> Result<Ticket, StoreError> {
        self.faults.check(StoreWrite::TicketUpdate)?;
        self.write(&mut lock(&self.inner), ticket, announce)
    }

    async fn update_for_order(
        &self,
        ticket: &Ticket,
        order: &OrderReplica,
        announce: Announce<'_, Ticket>,
    ) -> Result<Ticket, StoreError> {
        self.faults.check(StoreWrite::TicketUpdateForOrder)?;
        let mut tickets = lock(&self.inner);
        let updated = self.write(&mut tickets, ticket, announce)?;
        let mut replicas = self.order_replicas.records();
        let held = replicas.get(&order.id).map(|o| o.version);
        if held.is_none_or(|held| held < order.version) {
            replicas.insert(order.id, order.clone());
        }
        Ok(updated)
    }
}
