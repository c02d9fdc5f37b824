//! The ticketing system's stores in memory (feature `ticketing`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{InMemoryOutbox, InMemoryReplicaStore, lock};
use ticketing_core::ticketing::payment::{
    Outcome, PayableOrder, Payment, PaymentStatus, PaymentStore,
};
use ticketing_core::ticketing::reservation::OrderStatus;
use ticketing_core::ticketing::store::{
    Announce, FailureCount, FailureLimit, NewOrder, Order, OrderReplica, OrderStore,
    ReservationError, StoreError, Ticket, TicketReplica, TicketStore, User, UserStore,
    latest_refusal, outbox_key,
};
use ticketing_core::{Id, OutgoingMessage, Version};

mod faults;
mod orders;
mod payments;
mod tickets;
mod users;
pub use faults::{StoreFaults, StoreWrite};
pub use orders::InMemoryOrderStore;
pub use payments::InMemoryPaymentStore;
pub use tickets::InMemoryTicketStore;
pub use users::InMemoryUserStore;

/// The payments service's replica of orders, in memory.
pub type InMemoryPayableOrderStore = InMemoryReplicaStore<PayableOrder>;

/// The tickets service's replica of orders, in memory.
pub type InMemoryOrderReplicaStore = InMemoryReplicaStore<OrderReplica>;

/// The orders service's replica of tickets, in memory. [`InMemoryOrderStore`] reads it.
pub type InMemoryTicketReplicaStore = InMemoryReplicaStore<TicketReplica>;

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
    faults: StoreFaults,
}

impl Roles {
    pub(super) fn new(outbox: &InMemoryOutbox) -> Self {
        let outbox = outbox.clone();
        let ticket_replicas = InMemoryTicketReplicaStore::new();
        let order_replicas = InMemoryOrderReplicaStore::new();
        let faults = StoreFaults::default();
        let mut users = InMemoryUserStore::new();
        let mut tickets = InMemoryTicketStore::with(&outbox, &order_replicas);
        let mut orders = InMemoryOrderStore::with(&ticket_replicas, &outbox);
        let mut payments = InMemoryPaymentStore::with(&outbox);
        // One set of faults for the database's stores.
        users.faults = faults.clone();
        tickets.faults = faults.clone();
        orders.faults = faults.clone();
        payments.faults = faults.clone();
        Roles {
            users,
            tickets,
            order_replicas,
            orders,
            ticket_replicas,
            payments,
            payable_orders: InMemoryPayableOrderStore::new(),
            faults,
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

    /// The failures injected into this database's ticketing stores (none until a test arms
    /// one), and how often each write was called.
    pub fn faults(&self) -> StoreFaults {
        self.roles.faults.clone()
    }
}
