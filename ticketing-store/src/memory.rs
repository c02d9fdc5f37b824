//! In-memory stores: the whole store contract on a mutex per store, for tests and for running
//! the system with nothing installed. Cloning a store gives another handle to the same data.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;

use ticketing_core::reservation::OrderStatus;
use ticketing_core::store::{
    NewOrder, Order, OrderReplica, OrderReplicaStore, OrderStore, ReplicaLookup, StoreError,
    Ticket, TicketReplica, TicketReplicaStore, TicketStore, User, UserStore,
};
use ticketing_core::{Id, Version};

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Users in memory.
#[derive(Debug, Clone, Default)]
pub struct InMemoryUserStore {
    inner: Arc<Mutex<Users>>,
}

#[derive(Debug, Default)]
struct Users {
    by_id: HashMap<Id, User>,
    by_email: HashMap<String, Id>,
}

impl InMemoryUserStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl UserStore for InMemoryUserStore {
    async fn create(&self, user: User) -> Result<User, StoreError> {
        let mut users = lock(&self.inner);
        let key = user.email.to_lowercase();
        if users.by_email.contains_key(&key) {
            return Err(StoreError::AlreadyExists {
                entity: "user",
                key: user.email,
            });
        }
        if users.by_id.contains_key(&user.id) {
            return Err(StoreError::AlreadyExists {
                entity: "user",
                key: user.id.to_string(),
            });
        }
        users.by_email.insert(key, user.id);
        users.by_id.insert(user.id, user.clone());
        Ok(user)
    }

    async fn find_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        let users = lock(&self.inner);
        Ok(users
            .by_email
            .get(&email.to_lowercase())
            .and_then(|id| users.by_id.get(id))
            .cloned())
    }

    async fn get(&self, id: Id) -> Result<User, StoreError> {
        lock(&self.inner)
            .by_id
            .get(&id)
            .cloned()
            .ok_or_else(|| StoreError::not_found("user", id))
    }
}

/// Tickets in memory.
#[derive(Debug, Clone, Default)]
pub struct InMemoryTicketStore {
    inner: Arc<Mutex<Tickets>>,
}

#[derive(Debug, Default)]
struct Tickets {
    next: u64,
    rows: HashMap<Id, (u64, Ticket)>,
}

impl InMemoryTicketStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl TicketStore for InMemoryTicketStore {
    async fn create(&self, mut ticket: Ticket) -> Result<Ticket, StoreError> {
        let mut tickets = lock(&self.inner);
        if tickets.rows.contains_key(&ticket.id) {
            return Err(StoreError::AlreadyExists {
                entity: "ticket",
                key: ticket.id.to_string(),
            });
        }
        ticket.version = 0;
        tickets.next += 1;
        let seq = tickets.next;
        tickets.rows.insert(ticket.id, (seq, ticket.clone()));
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

    async fn update(&self, ticket: &Ticket) -> Result<Ticket, StoreError> {
        let mut tickets = lock(&self.inner);
        let (_, stored) = tickets
            .rows
            .get_mut(&ticket.id)
            .ok_or_else(|| StoreError::not_found("ticket", ticket.id))?;
        if stored.version != ticket.version {
            return Err(StoreError::VersionConflict {
                entity: "ticket",
                id: ticket.id,
                expected: ticket.version,
            });
        }
        stored.title.clone_from(&ticket.title);
        stored.price = ticket.price;
        stored.order_id = ticket.order_id;
        stored.version += 1;
        Ok(stored.clone())
    }
}

/// Applies a versioned replica record: insert at version 0, else replace version − 1.
fn apply_replica<T: Clone>(
    rows: &mut HashMap<Id, T>,
    id: Id,
    record: &T,
    version: Version,
    version_of: impl Fn(&T) -> Version,
    entity: &'static str,
) -> Result<(), StoreError> {
    let held = rows.get(&id).map(&version_of);
    let expected = version.checked_sub(1);
    if held != expected {
        return Err(StoreError::VersionConflict {
            entity,
            id,
            expected: expected.unwrap_or(0),
        });
    }
    rows.insert(id, record.clone());
    Ok(())
}

/// The tickets service's replica of orders, in memory.
#[derive(Debug, Clone, Default)]
pub struct InMemoryOrderReplicaStore {
    inner: Arc<Mutex<HashMap<Id, OrderReplica>>>,
}

impl InMemoryOrderReplicaStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl OrderReplicaStore for InMemoryOrderReplicaStore {
    async fn find_by_event(
        &self,
        id: Id,
        version: Version,
    ) -> Result<ReplicaLookup<OrderReplica>, StoreError> {
        let current = lock(&self.inner).get(&id).cloned();
        Ok(ReplicaLookup::of(current, version, |o| o.version))
    }

    async fn apply(&self, order: &OrderReplica) -> Result<(), StoreError> {
        apply_replica(
            &mut lock(&self.inner),
            order.id,
            order,
            order.version,
            |o| o.version,
            "order replica",
        )
    }

    async fn get(&self, id: Id) -> Result<OrderReplica, StoreError> {
        lock(&self.inner)
            .get(&id)
            .cloned()
            .ok_or_else(|| StoreError::not_found("order replica", id))
    }
}

/// The orders service's replica of tickets, in memory. [`InMemoryOrderStore`] reads it.
#[derive(Debug, Clone, Default)]
pub struct InMemoryTicketReplicaStore {
    inner: Arc<Mutex<HashMap<Id, TicketReplica>>>,
}

impl InMemoryTicketReplicaStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl TicketReplicaStore for InMemoryTicketReplicaStore {
    async fn find_by_event(
        &self,
        id: Id,
        version: Version,
    ) -> Result<ReplicaLookup<TicketReplica>, StoreError> {
        let current = lock(&self.inner).get(&id).cloned();
        Ok(ReplicaLookup::of(current, version, |t| t.version))
    }

    async fn apply(&self, ticket: &TicketReplica) -> Result<(), StoreError> {
        apply_replica(
            &mut lock(&self.inner),
            ticket.id,
            ticket,
            ticket.version,
            |t| t.version,
            "ticket replica",
        )
    }

    async fn get(&self, id: Id) -> Result<TicketReplica, StoreError> {
        lock(&self.inner)
            .get(&id)
            .cloned()
            .ok_or_else(|| StoreError::not_found("ticket replica", id))
    }
}

/// Orders in memory, joined with an [`InMemoryTicketReplicaStore`].
#[derive(Debug, Clone)]
pub struct InMemoryOrderStore {
    tickets: InMemoryTicketReplicaStore,
    inner: Arc<Mutex<Orders>>,
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
    /// Orders over this ticket replica.
    pub fn new(tickets: &InMemoryTicketReplicaStore) -> Self {
        InMemoryOrderStore {
            tickets: tickets.clone(),
            inner: Arc::default(),
        }
    }

    fn join(&self, id: Id, row: &OrderRow) -> Result<Order, StoreError> {
        let ticket = lock(&self.tickets.inner)
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
    async fn reserve(&self, order: NewOrder) -> Result<Order, StoreError> {
        if !lock(&self.tickets.inner).contains_key(&order.ticket_id) {
            return Err(StoreError::not_found("ticket", order.ticket_id));
        }
        let row = {
            let mut orders = lock(&self.inner);
            if orders.rows.contains_key(&order.id) {
                return Err(StoreError::AlreadyExists {
                    entity: "order",
                    key: order.id.to_string(),
                });
            }
            if orders.active.contains_key(&order.ticket_id) {
                return Err(StoreError::TicketReserved {
                    ticket_id: order.ticket_id,
                });
            }
            let row = OrderRow {
                user_id: order.user_id,
                ticket_id: order.ticket_id,
                status: OrderStatus::Created,
                expires_at: order.expires_at,
                version: 0,
            };
            orders.next += 1;
            let seq = orders.next;
            orders.active.insert(order.ticket_id, order.id);
            orders.rows.insert(order.id, (seq, row.clone()));
            row
        };
        self.join(order.id, &row)
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

    async fn set_status(
        &self,
        id: Id,
        expected_version: Version,
        status: OrderStatus,
    ) -> Result<Order, StoreError> {
        let row = {
            let mut orders = lock(&self.inner);
            let (_, row) = orders
                .rows
                .get_mut(&id)
                .ok_or_else(|| StoreError::not_found("order", id))?;
            if row.version != expected_version {
                return Err(StoreError::VersionConflict {
                    entity: "order",
                    id,
                    expected: expected_version,
                });
            }
            row.status = row.status.transition(status)?;
            row.version += 1;
            let row = row.clone();
            if !status.is_active() && orders.active.get(&row.ticket_id) == Some(&id) {
                orders.active.remove(&row.ticket_id);
            }
            row
        };
        self.join(id, &row)
    }

    async fn is_reserved(&self, ticket_id: Id) -> Result<bool, StoreError> {
        Ok(lock(&self.inner).active.contains_key(&ticket_id))
    }
}
