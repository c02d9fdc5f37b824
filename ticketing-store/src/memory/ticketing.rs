//! The ticketing system's stores in memory (feature `ticketing`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{InMemoryOutbox, InMemoryReplicaStore, lock};
use ticketing_core::ticketing::payment::{
    Outcome, PayableOrder, Payment, PaymentStatus, PaymentStore,
};
use ticketing_core::ticketing::reservation::OrderStatus;
use ticketing_core::ticketing::store::{
    Announce, NewOrder, Order, OrderReplica, OrderStore, ReservationError, StoreError, Ticket,
    TicketReplica, TicketStore, User, UserStore, outbox_key,
};
use ticketing_core::{Id, OutgoingMessage, Version};

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

/// Tickets in memory, with the outbox their events are committed to and the order replica
/// [`update_for_order`](TicketStore::update_for_order) records into.
#[derive(Debug, Clone, Default)]
pub struct InMemoryTicketStore {
    inner: Arc<Mutex<Tickets>>,
    outbox: InMemoryOutbox,
    order_replicas: InMemoryOrderReplicaStore,
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
        self.write(&mut lock(&self.inner), ticket, announce)
    }

    async fn update_for_order(
        &self,
        ticket: &Ticket,
        order: &OrderReplica,
        announce: Announce<'_, Ticket>,
    ) -> Result<Ticket, StoreError> {
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

/// The payments service's payments, in memory: at most one pending or succeeded attempt per
/// order, checked under the store's lock; a charge's events go to the shared outbox in the same
/// critical section.
#[derive(Debug, Clone)]
pub struct InMemoryPaymentStore {
    inner: Arc<Mutex<PaymentRows>>,
    outbox: InMemoryOutbox,
}

#[derive(Debug, Default)]
struct PaymentRows {
    /// Payments by id, with their insertion order.
    rows: HashMap<Id, (u64, Payment)>,
    /// The attempt holding each order (pending or succeeded).
    holding: HashMap<Id, Id>,
    next: u64,
}

impl InMemoryPaymentStore {
    /// An empty store committing its events to `outbox`.
    pub fn with(outbox: &InMemoryOutbox) -> Self {
        InMemoryPaymentStore {
            inner: Arc::default(),
            outbox: outbox.clone(),
        }
    }

    /// Changes a payment under the lock if it is in `from`; `VersionConflict` otherwise.
    fn change(
        &self,
        id: Id,
        from: PaymentStatus,
        change: impl FnOnce(&Payment) -> Result<(Payment, Vec<OutgoingMessage>), StoreError>,
    ) -> Result<Payment, StoreError> {
        let mut payments = lock(&self.inner);
        let (_, stored) = payments
            .rows
            .get(&id)
            .ok_or_else(|| StoreError::not_found("payment", id))?;
        if stored.status != from {
            return Err(StoreError::conflict("payment", id, stored.version));
        }
        let (changed, events) = change(stored)?;
        if !changed.status.holds_order() && payments.holding.get(&changed.order_id) == Some(&id) {
            payments.holding.remove(&changed.order_id);
        }
        if let Some((_, stored)) = payments.rows.get_mut(&id) {
            *stored = changed.clone();
        }
        self.outbox.append(&outbox_key("payment", id), events);
        Ok(changed)
    }
}

#[async_trait]
impl PaymentStore for InMemoryPaymentStore {
    async fn begin(&self, payment: Payment) -> Result<Payment, StoreError> {
        let mut payments = lock(&self.inner);
        if payments.holding.contains_key(&payment.order_id) {
            return Err(StoreError::AlreadyExists {
                entity: "payment",
                key: payment.order_id.to_string(),
            });
        }
        if payments.rows.contains_key(&payment.id) {
            return Err(StoreError::AlreadyExists {
                entity: "payment",
                key: payment.id.to_string(),
            });
        }
        let stored = payment.begun();
        payments.next += 1;
        let seq = payments.next;
        payments.holding.insert(stored.order_id, stored.id);
        payments.rows.insert(stored.id, (seq, stored.clone()));
        Ok(stored)
    }

    async fn settle_announcing(
        &self,
        id: Id,
        outcome: Outcome,
        announce: Announce<'_, Payment>,
    ) -> Result<Payment, StoreError> {
        self.change(id, PaymentStatus::Pending, |stored| {
            let settled = stored.settled(outcome);
            let events = settled.announced(announce)?;
            Ok((settled, events))
        })
    }

    async fn refund(&self, id: Id) -> Result<Payment, StoreError> {
        self.change(id, PaymentStatus::Succeeded, |stored| {
            Ok((stored.refunded(), Vec::new()))
        })
    }

    async fn get(&self, id: Id) -> Result<Payment, StoreError> {
        lock(&self.inner)
            .rows
            .get(&id)
            .map(|(_, p)| p.clone())
            .ok_or_else(|| StoreError::not_found("payment", id))
    }

    async fn for_order(&self, order_id: Id) -> Result<Vec<Payment>, StoreError> {
        let payments = lock(&self.inner);
        let mut found: Vec<&(u64, Payment)> = payments
            .rows
            .values()
            .filter(|(_, p)| p.order_id == order_id)
            .collect();
        found.sort_by_key(|(seq, _)| *seq);
        Ok(found.into_iter().map(|(_, p)| p.clone()).collect())
    }

    async fn pending(&self, limit: usize) -> Result<Vec<Payment>, StoreError> {
        let payments = lock(&self.inner);
        let mut found: Vec<&(u64, Payment)> = payments
            .rows
            .values()
            .filter(|(_, p)| p.status == PaymentStatus::Pending)
            .collect();
        found.sort_by_key(|(seq, _)| *seq);
        Ok(found
            .into_iter()
            .take(limit)
            .map(|(_, p)| p.clone())
            .collect())
    }
}

/// The payments service's replica of orders, in memory.
pub type InMemoryPayableOrderStore = InMemoryReplicaStore<PayableOrder>;

/// The tickets service's replica of orders, in memory.
pub type InMemoryOrderReplicaStore = InMemoryReplicaStore<OrderReplica>;

/// The orders service's replica of tickets, in memory. [`InMemoryOrderStore`] reads it.
pub type InMemoryTicketReplicaStore = InMemoryReplicaStore<TicketReplica>;

/// Orders in memory, joined with an [`InMemoryTicketReplicaStore`].
#[derive(Debug, Clone)]
pub struct InMemoryOrderStore {
    tickets: InMemoryTicketReplicaStore,
    inner: Arc<Mutex<Orders>>,
    outbox: InMemoryOutbox,
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

/// The ticketing roles of an [`InMemoryDatabase`](super::InMemoryDatabase).
#[derive(Debug, Clone)]
pub(super) struct Roles {
    users: InMemoryUserStore,
    tickets: InMemoryTicketStore,
    order_replicas: InMemoryOrderReplicaStore,
    ticket_replicas: InMemoryTicketReplicaStore,
    orders: InMemoryOrderStore,
    payments: InMemoryPaymentStore,
    payable_orders: InMemoryPayableOrderStore,
}

impl Roles {
    pub(super) fn new(outbox: &InMemoryOutbox) -> Self {
        let outbox = outbox.clone();
        let ticket_replicas = InMemoryTicketReplicaStore::new();
        let order_replicas = InMemoryOrderReplicaStore::new();
        Roles {
            users: InMemoryUserStore::new(),
            tickets: InMemoryTicketStore::with(&outbox, &order_replicas),
            order_replicas,
            orders: InMemoryOrderStore::with(&ticket_replicas, &outbox),
            ticket_replicas,
            payments: InMemoryPaymentStore::with(&outbox),
            payable_orders: InMemoryPayableOrderStore::new(),
        }
    }
}

/// The ticketing roles, with the same role methods as `PgDatabase` and `MongoDatabase`. The
/// orders store joins the ticket replica this handle holds.
impl super::InMemoryDatabase {
    /// Users.
    pub fn users(&self) -> InMemoryUserStore {
        self.roles.users.clone()
    }

    /// Tickets (tickets service).
    pub fn tickets(&self) -> InMemoryTicketStore {
        self.roles.tickets.clone()
    }

    /// The replica of orders (tickets service).
    pub fn order_replicas(&self) -> InMemoryOrderReplicaStore {
        self.roles.order_replicas.clone()
    }

    /// The replica of tickets (orders service).
    pub fn ticket_replicas(&self) -> InMemoryTicketReplicaStore {
        self.roles.ticket_replicas.clone()
    }

    /// Orders (orders service), joined with [`ticket_replicas`](Self::ticket_replicas).
    pub fn orders(&self) -> InMemoryOrderStore {
        self.roles.orders.clone()
    }

    /// Payments (payments service), committing their events to [`outbox`](Self::outbox).
    pub fn payments(&self) -> InMemoryPaymentStore {
        self.roles.payments.clone()
    }

    /// The replica of orders (payments service).
    pub fn payable_orders(&self) -> InMemoryPayableOrderStore {
        self.roles.payable_orders.clone()
    }
}
