//! Orders in memory, joined with the ticket replica; one active order per ticket under the lock.

#[allow(clippy::wildcard_imports)]
use super::*;

/// Orders in memory, joined with an [`InMemoryTicketReplicaStore`].
#[derive(Debug, Clone)]
pub struct InMemoryOrderStore {
    tickets: InMemoryTicketReplicaStore,
    inner: Arc<Mutex<Orders>>,
    outbox: InMemoryOutbox,
    pub(super) faults: StoreFaults,
}

#[derive(Debug, Default)]
struct Orders {
    next: u64,
    rows: HashMap<Id, (u64, OrderRow)>,
    /// The active order of each reserved ticket: the unique index of the other backends.
    active: HashMap<Id, Id>,
}

#[derive(Debug, Clone)]
struct OrderRow {
    user_id: Id,
    ticket_id: Id,
    status: OrderStatus,
    expires_at: chrono::DateTime<chrono::Utc>,
    version: Version,
}

impl InMemoryOrderStore {
    /// Orders over this ticket replica, with an outbox of their own.
    pub fn new(tickets: &InMemoryTicketReplicaStore) -> Self {
        Self::with(tickets, &InMemoryOutbox::new())
    }

    /// Orders over this ticket replica, committing their events to `outbox`.
    pub fn with(tickets: &InMemoryTicketReplicaStore, outbox: &InMemoryOutbox) -> Self {
        InMemoryOrderStore {
            tickets: tickets.clone(),
            inner: Arc::default(),
            outbox: outbox.clone(),
            faults: StoreFaults::default(),
        }
    }

    /// The outbox events are committed to.
    pub fn outbox(&self) -> InMemoryOutbox {
        self.outbox.clone()
    }

    fn join(&self, id: Id, row: &OrderRow) -> Result<Order, StoreError> {
        let ticket = self
            .tickets
            .records()
            .get(&row.ticket_id)
            .cloned()
            .ok_or_else(|| StoreError::Corrupt {
                entity: "order",
                reason: format!("order {id} refers to missing ticket {}", row.ticket_id),
            })?;
        Ok(Order {
            id,
            user_id: row.user_id,
            status: row.status,
            expires_at: row.expires_at,
            version: row.version,
            ticket,
        })
    }
}

#[async_trait]
impl OrderStore for InMemoryOrderStore {
    async fn reserve_announcing(
        &self,
        order: NewOrder,
        announce: Announce<'_, Order>,
    ) -> Result<Order, StoreError> {
        self.faults.check(StoreWrite::OrderReserve)?;
        if !self.tickets.records().contains_key(&order.ticket_id) {
            return Err(StoreError::not_found("ticket", order.ticket_id));
        }
        let mut orders = lock(&self.inner);
        {
            if orders.rows.contains_key(&order.id) {
                return Err(StoreError::AlreadyExists {
                    entity: "order",
                    key: order.id.to_string(),
                });
            }
            if orders.active.contains_key(&order.ticket_id) {
                return Err(ReservationError::TicketReserved {
                    ticket_id: order.ticket_id,
                }
                .into());
            }
            let row = OrderRow {
                user_id: order.user_id,
                ticket_id: order.ticket_id,
                status: OrderStatus::Created,
                expires_at: order.expires_at,
                version: 0,
            };
            let joined = self.join(order.id, &row)?;
            let events = announce(&joined)?;
            orders.next += 1;
            let seq = orders.next;
            orders.active.insert(order.ticket_id, order.id);
            orders.rows.insert(order.id, (seq, row));
            self.outbox.append(&outbox_key("order", order.id), events);
            Ok(joined)
        }
    }

    async fn get(&self, id: Id) -> Result<Order, StoreError> {
        let row = lock(&self.inner)
            .rows
            .get(&id)
            .map(|(_, row)| row.clone())
            .ok_or_else(|| StoreError::not_found("order", id))?;
        self.join(id, &row)
    }

    async fn list_for_user(&self, user_id: Id) -> Result<Vec<Order>, StoreError> {
        let mut rows: Vec<(u64, Id, OrderRow)> = lock(&self.inner)
            .rows
            .iter()
            .filter(|(_, (_, row))| row.user_id == user_id)
            .map(|(id, (seq, row))| (*seq, *id, row.clone()))
            .collect();
        rows.sort_by_key(|(seq, _, _)| *seq);
        rows.iter()
            .map(|(_, id, row)| self.join(*id, row))
            .collect()
    }

    async fn set_status_announcing(
        &self,
        id: Id,
        expected_version: Version,
        status: OrderStatus,
        announce: Announce<'_, Order>,
    ) -> Result<Order, StoreError> {
        self.faults.check(StoreWrite::OrderSetStatus)?;
        let mut orders = lock(&self.inner);
        let (_, stored) = orders
            .rows
            .get(&id)
            .ok_or_else(|| StoreError::not_found("order", id))?;
        if stored.version != expected_version {
            return Err(StoreError::conflict("order", id, expected_version));
        }
        let row = OrderRow {
            status: stored.status.transition(status)?,
            version: stored.version + 1,
            ..stored.clone()
        };
        let joined = self.join(id, &row)?;
        let events = announce(&joined)?;
        if !status.is_active() && orders.active.get(&row.ticket_id) == Some(&id) {
            orders.active.remove(&row.ticket_id);
        }
        if let Some((_, stored)) = orders.rows.get_mut(&id) {
            *stored = row;
        }
        self.outbox.append(&outbox_key("order", id), events);
        Ok(joined)
    }

    async fn is_reserved(&self, ticket_id: Id) -> Result<bool, StoreError> {
        Ok(lock(&self.inner).active.contains_key(&ticket_id))
    }
}
