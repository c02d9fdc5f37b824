//! The store conformance suite: what every store backend must do.
//!
//! Each case takes a [`StoreFactory`] that hands out a fresh, isolated set of stores per call
//! (a new schema or database on a live backend). Run them all with
//! [`store_conformance_tests!`](crate::store_conformance_tests).

#![allow(missing_docs)]

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::future::join_all;

use crate::Id;
use crate::ticketing::OrderStatus;
use crate::ticketing::Price;
use crate::ticketing::store::ReservationError;
use crate::ticketing::store::{
    NewOrder, Order, OrderReplica, OrderReplicaStore, OrderStore, StoreError, Ticket,
    TicketReplica, TicketReplicaStore, TicketStore, User, UserStore,
};
use crate::version::{EventDisposition, Version};

pub use super::outbox::{
    a_commit_wakes_the_relay, a_listener_change_records_its_order_in_the_same_unit,
    a_rejected_change_commits_no_event, events_of_one_record_are_pending_in_commit_order,
    state_and_events_commit_together, the_relay_publishes_everything_once_and_empties_the_outbox,
    two_relays_at_once_keep_per_record_order,
};

/// One isolated set of stores, as the three services would hold them.
#[derive(Clone)]
pub struct Stores {
    pub users: Arc<dyn UserStore>,
    pub tickets: Arc<dyn TicketStore>,
    pub order_replicas: Arc<dyn OrderReplicaStore>,
    pub ticket_replicas: Arc<dyn TicketReplicaStore>,
    pub orders: Arc<dyn OrderStore>,
    /// The outbox the tickets and orders stores commit their events to.
    pub outbox: Arc<dyn crate::outbox::Outbox>,
}

/// Hands out isolated stores for the suite.
#[async_trait]
pub trait StoreFactory: Send + Sync {
    /// Fresh, empty stores that share nothing with any other call.
    async fn stores(&self) -> Stores;
}

fn price(text: &str) -> Price {
    text.parse().expect("price")
}

pub(super) fn ticket(title: &str) -> Ticket {
    Ticket {
        id: Id::new(),
        title: title.to_owned(),
        price: price("20"),
        user_id: Id::new(),
        version: 0,
        order_id: None,
    }
}

fn expiry() -> DateTime<Utc> {
    "2030-01-02T03:04:05.678Z".parse().expect("time")
}

fn new_order(user_id: Id, ticket_id: Id) -> NewOrder {
    NewOrder {
        id: Id::new(),
        user_id,
        ticket_id,
        expires_at: expiry(),
    }
}

/// A ticket replica at `version`, priced 1.
fn replica_at(id: Id, title: &str, version: Version) -> TicketReplica {
    TicketReplica {
        id,
        title: title.to_owned(),
        price: price("1"),
        version,
    }
}

pub(super) async fn replicated_ticket(stores: &Stores, title: &str) -> TicketReplica {
    let replica = TicketReplica {
        id: Id::new(),
        title: title.to_owned(),
        price: price("15.5"),
        version: 0,
    };
    stores
        .ticket_replicas
        .apply(&replica)
        .await
        .expect("apply ticket replica");
    replica
}

fn is_conflict<T: std::fmt::Debug>(result: &Result<T, StoreError>) -> bool {
    matches!(result, Err(StoreError::VersionConflict { .. }))
}

// ---------------------------------------------------------------------------------------------
// Owned records: versions and optimistic concurrency.

pub async fn a_created_ticket_has_version_0(factory: &dyn StoreFactory) {
    let stores = factory.stores().await;
    let mut t = ticket("concert");
    t.version = 7;
    let created = stores.tickets.create(t.clone()).await.expect("create");
    assert_eq!(created.version, 0);
    let read = stores.tickets.get(t.id).await.expect("get");
    assert_eq!(read, Ticket { version: 0, ..t });
}

pub async fn each_update_increments_the_version_by_exactly_one(factory: &dyn StoreFactory) {
    let (stores, mut t) = with_concert(factory).await;
    for expected in 1..=5 {
        t.title = format!("concert, take {expected}");
        t = stores.tickets.update(&t).await.expect("update");
        assert_eq!(t.version, expected);
        assert_eq!(stores.tickets.get(t.id).await.expect("get"), t);
    }
}

pub async fn a_stale_update_is_a_version_conflict_and_writes_nothing(factory: &dyn StoreFactory) {
    let (stores, v0) = with_concert(factory).await;
    let v1 = stores
        .tickets
        .update(&Ticket {
            title: "first".into(),
            ..v0.clone()
        })
        .await
        .expect("update");
    let stale = stores
        .tickets
        .update(&Ticket {
            title: "second".into(),
            price: price("99"),
            ..v0
        })
        .await;
    assert!(is_conflict(&stale), "{stale:?}");
    assert_eq!(stores.tickets.get(v1.id).await.expect("get"), v1);
}

pub async fn of_concurrent_writers_of_one_version_exactly_one_wins(factory: &dyn StoreFactory) {
    let (stores, v0) = with_concert(factory).await;
    let writes = (0..16).map(|i| {
        let tickets = stores.tickets.clone();
        let t = Ticket {
            title: format!("writer {i}"),
            ..v0.clone()
        };
        async move { tickets.update(&t).await }
    });
    let results = join_all(writes).await;
    let winners: Vec<&Ticket> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    assert!(results.iter().filter(|r| r.is_err()).all(is_conflict));
    let stored = stores.tickets.get(v0.id).await.expect("get");
    assert_eq!(&stored, winners[0]);
    assert_eq!(stored.version, 1);
}

pub async fn updating_a_missing_ticket_is_not_found(factory: &dyn StoreFactory) {
    let stores = factory.stores().await;
    let result = stores.tickets.update(&ticket("ghost")).await;
    assert!(
        matches!(result, Err(StoreError::NotFound { .. })),
        "{result:?}"
    );
}

pub async fn missing_records_are_not_found(factory: &dyn StoreFactory) {
    let stores = factory.stores().await;
    let id = Id::new();
    assert!(
        stores
            .tickets
            .get(id)
            .await
            .expect_err("ticket")
            .is_not_found()
    );
    assert!(stores.users.get(id).await.expect_err("user").is_not_found());
    assert!(
        stores
            .orders
            .get(id)
            .await
            .expect_err("order")
            .is_not_found()
    );
    assert!(
        stores
            .ticket_replicas
            .get(&id)
            .await
            .expect_err("ticket replica")
            .is_not_found()
    );
    assert!(
        stores
            .order_replicas
            .get(&id)
            .await
            .expect_err("order replica")
            .is_not_found()
    );
    assert_eq!(
        stores
            .users
            .find_by_email("nobody@example.com")
            .await
            .expect("find"),
        None
    );
    let missing = stores
        .orders
        .set_status(id, 0, OrderStatus::Cancelled)
        .await;
    assert!(
        matches!(missing, Err(StoreError::NotFound { .. })),
        "{missing:?}"
    );
}

pub async fn a_taken_id_already_exists(factory: &dyn StoreFactory) {
    let (stores, t) = with_concert(factory).await;
    let again = stores
        .tickets
        .create(Ticket {
            title: "other".into(),
            ..t.clone()
        })
        .await;
    assert!(
        matches!(again, Err(StoreError::AlreadyExists { .. })),
        "{again:?}"
    );
    assert_eq!(
        stores.tickets.get(t.id).await.expect("get").title,
        "concert"
    );

    let replica = replicated_ticket(&stores, "show").await;
    let order = new_order(Id::new(), replica.id);
    stores.orders.reserve(order.clone()).await.expect("reserve");
    let other_ticket = replicated_ticket(&stores, "other show").await;
    let again = stores
        .orders
        .reserve(NewOrder {
            ticket_id: other_ticket.id,
            ..order
        })
        .await;
    assert!(
        matches!(again, Err(StoreError::AlreadyExists { .. })),
        "{again:?}"
    );
}

pub async fn prices_titles_and_times_are_stored_exactly(factory: &dyn StoreFactory) {
    let stores = factory.stores().await;
    for (title, amount) in [
        ("a", "0.01"),
        ("ü ✓ \"quoted\" 'é'", "19.99"),
        ("max", "1000000"),
    ] {
        let t = Ticket {
            price: price(amount),
            ..ticket(title)
        };
        stores.tickets.create(t.clone()).await.expect("create");
        let read = stores.tickets.get(t.id).await.expect("get");
        assert_eq!((read.title.as_str(), read.price), (title, price(amount)));
    }
    let replica = replicated_ticket(&stores, "timed").await;
    let order = new_order(Id::new(), replica.id);
    stores.orders.reserve(order.clone()).await.expect("reserve");
    let read = stores.orders.get(order.id).await.expect("get");
    assert_eq!(read.expires_at, expiry());
    assert_eq!(read.ticket.price, price("15.5"));
}

// ---------------------------------------------------------------------------------------------
// Replicas: find_by_event.

pub async fn find_by_event_answers_apply_duplicate_and_gap(factory: &dyn StoreFactory) {
    let stores = factory.stores().await;
    let id = Id::new();
    let lookup = held_against(&*stores.ticket_replicas, &id, 0).await;
    assert_eq!(
        (lookup.disposition, lookup.current),
        (EventDisposition::Apply, None)
    );
    assert_eq!(
        held_against(&*stores.ticket_replicas, &id, 1)
            .await
            .disposition,
        EventDisposition::Gap,
        "absent record, later version"
    );
    let mut replica = replica_at(id, "t", 0);
    stores
        .ticket_replicas
        .apply(&replica)
        .await
        .expect("apply 0");
    replica.version = 1;
    replica.title = "t1".into();
    stores
        .ticket_replicas
        .apply(&replica)
        .await
        .expect("apply 1");
    for (event, expected) in [
        (0, EventDisposition::Duplicate),
        (1, EventDisposition::Duplicate),
        (2, EventDisposition::Apply),
        (3, EventDisposition::Gap),
        (9, EventDisposition::Gap),
    ] {
        let lookup = held_against(&*stores.ticket_replicas, &id, event).await;
        assert_eq!(lookup.disposition, expected, "event version {event}");
        assert_eq!(lookup.current.as_ref(), Some(&replica));
    }
}

pub async fn applying_an_event_sets_the_version_from_the_event(factory: &dyn StoreFactory) {
    let stores = factory.stores().await;
    let id = Id::new();
    for version in 0..4 {
        let replica = TicketReplica {
            id,
            title: format!("v{version}"),
            price: price("3.25"),
            version,
        };
        stores.ticket_replicas.apply(&replica).await.expect("apply");
        assert_eq!(stores.ticket_replicas.get(&id).await.expect("get"), replica);
    }
}

pub async fn applying_out_of_turn_is_a_version_conflict_and_writes_nothing(
    factory: &dyn StoreFactory,
) {
    let stores = factory.stores().await;
    let id = Id::new();
    let v0 = replica_at(id, "v0", 0);
    let gap = stores
        .ticket_replicas
        .apply(&TicketReplica {
            version: 2,
            ..v0.clone()
        })
        .await;
    assert!(is_conflict(&gap), "applying v2 to nothing: {gap:?}");
    stores.ticket_replicas.apply(&v0).await.expect("apply 0");
    let again = stores
        .ticket_replicas
        .apply(&TicketReplica {
            title: "again".into(),
            ..v0.clone()
        })
        .await;
    assert!(is_conflict(&again), "applying v0 twice: {again:?}");
    let skip = stores
        .ticket_replicas
        .apply(&TicketReplica {
            title: "v3".into(),
            version: 3,
            ..v0.clone()
        })
        .await;
    assert!(is_conflict(&skip), "applying v3 to v0: {skip:?}");
    assert_eq!(stores.ticket_replicas.get(&id).await.expect("get"), v0);
}

pub async fn of_concurrent_appliers_of_one_event_exactly_one_wins(factory: &dyn StoreFactory) {
    let stores = factory.stores().await;
    let id = Id::new();
    let replica = replica_at(id, "v0", 0);
    let results = join_all((0..16).map(|_| {
        let store = stores.ticket_replicas.clone();
        let replica = replica.clone();
        async move { store.apply(&replica).await }
    }))
    .await;
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    assert!(
        results.iter().filter(|r| r.is_err()).all(is_conflict),
        "{results:?}"
    );
}

pub async fn a_shuffled_event_log_converges_to_the_in_order_state(factory: &dyn StoreFactory) {
    let stores = factory.stores().await;
    // 20 tickets with 6 versions each, plus redelivered duplicates, in a scrambled order.
    let ids: Vec<Id> = (0..20).map(|_| Id::new()).collect();
    let event = |id: Id, version: u64| TicketReplica {
        id,
        title: format!("{id} v{version}"),
        price: Price::from_cents(100 + version).expect("price"),
        version,
    };
    let mut log: Vec<TicketReplica> = ids
        .iter()
        .flat_map(|id| (0..6).chain(0..3).map(move |v| (*id, v)))
        .map(|(id, v)| event(id, v))
        .collect();
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    for i in (1..log.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        log.swap(i, (state % (i as u64 + 1)) as usize);
    }
    // Apply as a listener would: Apply writes, Duplicate acks, Gap goes to the back.
    let mut queue: std::collections::VecDeque<TicketReplica> = log.into();
    let mut rounds = 0;
    while let Some(e) = queue.pop_front() {
        rounds += 1;
        assert!(rounds < 100_000, "no progress");
        match held_against(&*stores.ticket_replicas, &e.id, e.version)
            .await
            .disposition
        {
            EventDisposition::Apply => stores.ticket_replicas.apply(&e).await.expect("apply"),
            EventDisposition::Duplicate => {}
            EventDisposition::Gap => queue.push_back(e),
        }
    }
    for id in ids {
        assert_eq!(
            stores.ticket_replicas.get(&id).await.expect("get"),
            event(id, 5)
        );
    }
}

pub async fn the_order_replica_follows_the_same_contract(factory: &dyn StoreFactory) {
    let stores = factory.stores().await;
    let id = Id::new();
    let ticket_id = Id::new();
    let cancelled = OrderReplica {
        id,
        ticket_id,
        status: OrderStatus::Cancelled,
        version: 1,
    };
    let lookup = held_against(&*stores.order_replicas, &id, 1).await;
    assert_eq!(
        lookup.disposition,
        EventDisposition::Gap,
        "cancelled before created"
    );
    assert!(is_conflict(&stores.order_replicas.apply(&cancelled).await));
    let created = OrderReplica {
        status: OrderStatus::Created,
        version: 0,
        ..cancelled.clone()
    };
    assert_eq!(
        held_against(&*stores.order_replicas, &id, 0)
            .await
            .disposition,
        EventDisposition::Apply
    );
    stores
        .order_replicas
        .apply(&created)
        .await
        .expect("apply created");
    assert_eq!(
        held_against(&*stores.order_replicas, &id, 0)
            .await
            .disposition,
        EventDisposition::Duplicate
    );
    let lookup = held_against(&*stores.order_replicas, &id, 1).await;
    assert_eq!(
        (lookup.disposition, lookup.current),
        (EventDisposition::Apply, Some(created))
    );
    stores
        .order_replicas
        .apply(&cancelled)
        .await
        .expect("apply cancelled");
    assert_eq!(
        stores.order_replicas.get(&id).await.expect("get"),
        cancelled
    );
}

// ---------------------------------------------------------------------------------------------
// Users.

fn user(email: &str) -> User {
    User {
        id: Id::new(),
        email: email.to_owned(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned(),
    }
}

pub async fn user_emails_are_unique_ignoring_case(factory: &dyn StoreFactory) {
    let stores = factory.stores().await;
    let created = stores
        .users
        .create(user("Jane.Doe@Example.com"))
        .await
        .expect("create");
    assert_eq!(created.email, "Jane.Doe@Example.com");
    let again = stores.users.create(user("jane.doe@example.COM")).await;
    assert!(
        matches!(again, Err(StoreError::AlreadyExists { .. })),
        "{again:?}"
    );
    let found = stores
        .users
        .find_by_email("JANE.DOE@example.com")
        .await
        .expect("find");
    assert_eq!(found, Some(created.clone()));
    assert_eq!(stores.users.get(created.id).await.expect("get"), created);
    stores
        .users
        .create(user("john@example.com"))
        .await
        .expect("another email");
}

pub async fn failed_sign_ins_are_counted_per_key_and_refuse_past_the_allowance(
    factory: &dyn StoreFactory,
) {
    use crate::ticketing::store::FailureLimit;
    let stores = factory.stores().await;
    let limit = FailureLimit {
        allowance: 2,
        window: std::time::Duration::from_secs(60),
    };
    // Whole milliseconds, as the stores keep times.
    let now = DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).expect("now");
    let (key, other) = (
        "account:a@example.com".to_owned(),
        "address:192.0.2.1".to_owned(),
    );
    let keys = [key.clone(), other.clone()];
    let failed = async || {
        stores
            .users
            .sign_in_failed(&key, limit, now)
            .await
            .expect("fail")
    };
    let refused = async |keys: &[String], at| {
        stores
            .users
            .sign_in_refused(keys, at)
            .await
            .expect("refused")
    };
    for _ in 0..2 {
        assert_eq!(failed().await, None);
    }
    assert_eq!(refused(&keys, now).await, None);
    // The third: past the allowance of two, refused until one failure's share (30 s) is back.
    let until = failed().await.expect("refused from the third failure");
    assert_eq!((until - now).num_seconds(), 30);
    assert_eq!(refused(&keys, now).await, Some(until));
    assert_eq!(
        refused(std::slice::from_ref(&other), now).await,
        None,
        "another key is not refused"
    );
    let later = until + chrono::Duration::milliseconds(1);
    assert_eq!(refused(&keys, later).await, None);
}

pub async fn concurrent_failed_sign_ins_of_one_key_each_count(factory: &dyn StoreFactory) {
    use crate::ticketing::store::FailureLimit;
    let stores = factory.stores().await;
    let limit = FailureLimit {
        allowance: 16,
        window: std::time::Duration::from_secs(60),
    };
    let now = Utc::now();
    let key = "account:race@example.com";
    let results = join_all((0..16).map(|_| {
        let users = stores.users.clone();
        async move { users.sign_in_failed(key, limit, now).await }
    }))
    .await;
    assert!(results.iter().all(|r| matches!(r, Ok(None))), "{results:?}");
    // Had two of them counted as one, the allowance would not be spent yet.
    let refused = stores
        .users
        .sign_in_failed(key, limit, now)
        .await
        .expect("fail");
    assert!(
        refused.is_some(),
        "the 17th failure is past an allowance of 16"
    );
}

pub async fn concurrent_signups_with_one_email_create_one_user(factory: &dyn StoreFactory) {
    let stores = factory.stores().await;
    let results = join_all((0..32).map(|i| {
        let users = stores.users.clone();
        let email = if i % 2 == 0 {
            "race@example.com"
        } else {
            "RACE@example.com"
        };
        async move { users.create(user(email)).await }
    }))
    .await;
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    assert!(
        results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .all(|e| matches!(e, StoreError::AlreadyExists { .. }))
    );
}

// ---------------------------------------------------------------------------------------------
// Reservation.

pub async fn reservation_is_atomic_among_32_concurrent_orders(factory: &dyn StoreFactory) {
    let stores = factory.stores().await;
    let t = replicated_ticket(&stores, "hot").await;
    let results = join_all((0..32).map(|_| {
        let orders = stores.orders.clone();
        let order = new_order(Id::new(), t.id);
        async move { orders.reserve(order).await }
    }))
    .await;
    let winners: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    assert!(
        results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .all(|e| matches!(
                ReservationError::of(e),
                Some(ReservationError::TicketReserved { .. })
            )),
        "{results:?}"
    );
    let winner = winners[0];
    assert_eq!((winner.status, winner.version), (OrderStatus::Created, 0));
    assert_eq!(winner.ticket, t);
    assert!(stores.orders.is_reserved(t.id).await.expect("reserved"));
}

/// A replicated ticket of a show, and an order that holds it.
async fn held_ticket(stores: &Stores) -> (TicketReplica, Order) {
    let t = replicated_ticket(stores, "show").await;
    let order = reserve(stores, t.id).await.expect("reserve");
    (t, order)
}

/// A new buyer's order for `ticket_id`.
async fn reserve(stores: &Stores, ticket_id: Id) -> Result<Order, StoreError> {
    stores.orders.reserve(new_order(Id::new(), ticket_id)).await
}

/// Moves order `id` from `version` to `status`, which must be allowed.
async fn moved(stores: &Stores, id: Id, version: Version, status: OrderStatus) -> Order {
    let moved = stores.orders.set_status(id, version, status).await;
    moved.unwrap_or_else(|e| panic!("to {status:?}: {e}"))
}

/// Whether `result` is the reservation rule's refusal `expected`.
fn refused<T>(result: &Result<T, StoreError>, expected: fn(&ReservationError) -> bool) -> bool {
    matches!(result, Err(e) if ReservationError::of(e).is_some_and(expected))
}

pub async fn a_cancelled_order_frees_the_ticket(factory: &dyn StoreFactory) {
    let stores = factory.stores().await;
    let (t, first) = held_ticket(&stores).await;
    let cancelled = moved(&stores, first.id, 0, OrderStatus::Cancelled).await;
    assert_eq!(
        (cancelled.status, cancelled.version),
        (OrderStatus::Cancelled, 1)
    );
    assert!(!stores.orders.is_reserved(t.id).await.expect("reserved"));
    let second = reserve(&stores, t.id).await.expect("re-order");
    assert_eq!(second.status, OrderStatus::Created);
    let third = reserve(&stores, t.id).await;
    assert!(
        refused(&third, |e| matches!(
            e,
            ReservationError::TicketReserved { .. }
        )),
        "{third:?}"
    );
}

pub async fn a_complete_order_keeps_the_ticket(factory: &dyn StoreFactory) {
    let stores = factory.stores().await;
    let (t, order) = held_ticket(&stores).await;
    let paying = moved(&stores, order.id, 0, OrderStatus::AwaitingPayment).await;
    let complete = moved(&stores, order.id, paying.version, OrderStatus::Complete).await;
    assert_eq!(complete.version, 2);
    assert!(stores.orders.is_reserved(t.id).await.expect("reserved"));
    let other = reserve(&stores, t.id).await;
    assert!(
        refused(&other, |e| matches!(
            e,
            ReservationError::TicketReserved { .. }
        )),
        "{other:?}"
    );
    let cancel = stores
        .orders
        .set_status(order.id, 2, OrderStatus::Cancelled)
        .await;
    assert!(
        refused(&cancel, |e| matches!(e, ReservationError::Transition(_))),
        "{cancel:?}"
    );
    assert_eq!(stores.orders.get(order.id).await.expect("get"), complete);
}

pub async fn an_order_status_change_is_version_checked(factory: &dyn StoreFactory) {
    let stores = factory.stores().await;
    let (t, order) = held_ticket(&stores).await;
    moved(&stores, order.id, 0, OrderStatus::AwaitingPayment).await;
    let stale = stores
        .orders
        .set_status(order.id, 0, OrderStatus::Cancelled)
        .await;
    assert!(is_conflict(&stale), "{stale:?}");
    let read = stores.orders.get(order.id).await.expect("get");
    assert_eq!(
        (read.status, read.version),
        (OrderStatus::AwaitingPayment, 1)
    );
    assert!(stores.orders.is_reserved(t.id).await.expect("reserved"));
}

pub async fn of_concurrent_cancellations_exactly_one_wins(factory: &dyn StoreFactory) {
    let stores = factory.stores().await;
    let (_, order) = held_ticket(&stores).await;
    let results = join_all((0..16).map(|_| {
        let orders = stores.orders.clone();
        async move { orders.set_status(order.id, 0, OrderStatus::Cancelled).await }
    }))
    .await;
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    assert_eq!(stores.orders.get(order.id).await.expect("get").version, 1);
}

pub async fn ordering_an_unknown_ticket_is_not_found(factory: &dyn StoreFactory) {
    let stores = factory.stores().await;
    let result = reserve(&stores, Id::new()).await;
    assert!(
        matches!(result, Err(StoreError::NotFound { .. })),
        "{result:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Listings.

pub async fn a_users_orders_are_listed_oldest_first_with_their_ticket(factory: &dyn StoreFactory) {
    let stores = factory.stores().await;
    let (buyer, other) = (Id::new(), Id::new());
    let mut expected = Vec::new();
    for i in 0..5 {
        let t = replicated_ticket(&stores, &format!("show {i}")).await;
        let order = stores
            .orders
            .reserve(new_order(buyer, t.id))
            .await
            .expect("reserve");
        expected.push((order.id, t));
        let elsewhere = replicated_ticket(&stores, &format!("other {i}")).await;
        stores
            .orders
            .reserve(new_order(other, elsewhere.id))
            .await
            .expect("reserve");
    }
    stores
        .orders
        .set_status(expected[1].0, 0, OrderStatus::Cancelled)
        .await
        .expect("cancel");
    let listed = stores.orders.list_for_user(buyer).await.expect("list");
    let got: Vec<(Id, TicketReplica)> = listed.iter().map(|o| (o.id, o.ticket.clone())).collect();
    assert_eq!(got, expected);
    assert!(listed.iter().all(|o| o.user_id == buyer));
    assert_eq!(listed[1].status, OrderStatus::Cancelled);
    assert!(
        stores
            .orders
            .list_for_user(Id::new())
            .await
            .expect("list")
            .is_empty()
    );
}

/// What `store` holds against an event of `version` about `id`.
async fn held_against<R: crate::store::Replica>(
    store: &dyn crate::store::ReplicaStore<R>,
    id: &R::Id,
    version: Version,
) -> crate::store::ReplicaLookup<R> {
    store.find_by_event(id, version).await.expect("lookup")
}

/// Fresh stores holding one ticket, "concert", as created.
async fn with_concert(factory: &dyn StoreFactory) -> (Stores, Ticket) {
    let stores = factory.stores().await;
    let concert = stores.tickets.create(ticket("concert")).await;
    (stores, concert.expect("create"))
}

/// Tickets `t0` to `t{count - 1}`, created in order, those at `held` then reserved (in that
/// order) by an order of their own.
async fn tickets_held(stores: &Stores, count: usize, held: &[usize]) -> Vec<Ticket> {
    let mut created = Vec::new();
    for i in 0..count {
        let made = stores.tickets.create(ticket(&format!("t{i}"))).await;
        created.push(made.expect("create"));
    }
    for &i in held {
        let reserve = Ticket {
            order_id: Some(Id::new()),
            ..created[i].clone()
        };
        stores.tickets.update(&reserve).await.expect("reserve");
    }
    created
}

/// The titles of the tickets listed as unreserved, in the listing's order.
async fn unreserved_titles(stores: &Stores) -> Vec<String> {
    let listed = stores.tickets.list_unreserved().await.expect("list");
    listed.into_iter().map(|t| t.title).collect()
}

pub async fn only_unreserved_tickets_are_listed_oldest_first(factory: &dyn StoreFactory) {
    let stores = factory.stores().await;
    let created = tickets_held(&stores, 6, &[1, 4]).await;
    assert_eq!(unreserved_titles(&stores).await, ["t0", "t2", "t3", "t5"]);
    let reserved = stores.tickets.get(created[1].id).await.expect("get");
    let released = stores
        .tickets
        .update(&Ticket {
            order_id: None,
            ..reserved
        })
        .await
        .expect("release");
    assert_eq!(released.version, 2);
    assert!(unreserved_titles(&stores).await.contains(&"t1".to_owned()));
}

pub async fn unreserved_tickets_page_newest_first_after_a_cursor(factory: &dyn StoreFactory) {
    let stores = factory.stores().await;
    // t5 is held; t2 is held and will be the cursor of a page.
    let created = tickets_held(&stores, 7, &[5, 2]).await;
    let titles = |page: Vec<Ticket>| page.into_iter().map(|t| t.title).collect::<Vec<_>>();
    let first = stores
        .tickets
        .list_unreserved_page(None, 3)
        .await
        .expect("first page");
    let last_of_first = first.last().expect("a full page").id;
    assert_eq!(titles(first), ["t6", "t4", "t3"]);
    let second = stores
        .tickets
        .list_unreserved_page(Some(last_of_first), 3)
        .await
        .expect("second page");
    assert_eq!(titles(second), ["t1", "t0"]);
    // A cursor that is held now still marks its place.
    let after_held = stores
        .tickets
        .list_unreserved_page(Some(created[2].id), 10)
        .await
        .expect("after a held ticket");
    assert_eq!(titles(after_held), ["t1", "t0"]);
    assert!(
        stores
            .tickets
            .list_unreserved_page(None, 0)
            .await
            .expect("empty")
            .is_empty()
    );
    assert!(matches!(
        stores
            .tickets
            .list_unreserved_page(Some(Id::new()), 3)
            .await,
        Err(StoreError::NotFound { .. })
    ));
}

pub async fn reserved_state_round_trips_on_the_ticket(factory: &dyn StoreFactory) {
    let stores = factory.stores().await;
    let t = stores.tickets.create(ticket("t")).await.expect("create");
    let order_id = Id::new();
    let reserved = stores
        .tickets
        .update(&Ticket {
            order_id: Some(order_id),
            ..t
        })
        .await
        .expect("reserve");
    let read = stores.tickets.get(reserved.id).await.expect("get");
    assert_eq!(read.order_id, Some(order_id));
    let by_title: BTreeMap<String, Ticket> = stores
        .tickets
        .list_unreserved()
        .await
        .expect("list")
        .into_iter()
        .map(|t| (t.title.clone(), t))
        .collect();
    assert!(by_title.is_empty());
}

/// Expands one test per store conformance case; see
/// [`bus_conformance_tests!`](crate::bus_conformance_tests) for the arguments.
#[macro_export]
macro_rules! store_conformance_tests {
    (#[$attr:meta] factory = $factory:expr $(,)?) => {
        $crate::__conformance_cases!(
            #[$attr] [$factory] store:
            a_created_ticket_has_version_0
            unreserved_tickets_page_newest_first_after_a_cursor
            each_update_increments_the_version_by_exactly_one
            a_stale_update_is_a_version_conflict_and_writes_nothing
            of_concurrent_writers_of_one_version_exactly_one_wins
            updating_a_missing_ticket_is_not_found
            missing_records_are_not_found
            a_taken_id_already_exists
            prices_titles_and_times_are_stored_exactly
            find_by_event_answers_apply_duplicate_and_gap
            applying_an_event_sets_the_version_from_the_event
            applying_out_of_turn_is_a_version_conflict_and_writes_nothing
            of_concurrent_appliers_of_one_event_exactly_one_wins
            a_shuffled_event_log_converges_to_the_in_order_state
            the_order_replica_follows_the_same_contract
            user_emails_are_unique_ignoring_case
            concurrent_signups_with_one_email_create_one_user
            failed_sign_ins_are_counted_per_key_and_refuse_past_the_allowance
            concurrent_failed_sign_ins_of_one_key_each_count
            reservation_is_atomic_among_32_concurrent_orders
            a_cancelled_order_frees_the_ticket
            a_complete_order_keeps_the_ticket
            an_order_status_change_is_version_checked
            of_concurrent_cancellations_exactly_one_wins
            ordering_an_unknown_ticket_is_not_found
            a_users_orders_are_listed_oldest_first_with_their_ticket
            only_unreserved_tickets_are_listed_oldest_first
            reserved_state_round_trips_on_the_ticket
            state_and_events_commit_together
            a_rejected_change_commits_no_event
            events_of_one_record_are_pending_in_commit_order
            the_relay_publishes_everything_once_and_empties_the_outbox
            two_relays_at_once_keep_per_record_order
            a_commit_wakes_the_relay
            a_listener_change_records_its_order_in_the_same_unit
        );
    };
}
