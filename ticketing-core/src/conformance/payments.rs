//! The payment store contract: one charge per order, attempts that end once, their events
//! committed with the charge, and the payments service's versioned replica of orders. Run them
//! all with [`payment_store_conformance_tests!`](crate::payment_store_conformance_tests); each
//! case's name is the sentence it checks.

#![allow(missing_docs)]

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use futures::future::join_all;

use crate::Id;
use crate::bus::OutgoingMessage;
use crate::outbox::Outbox;
use crate::publisher::PublishError;
use crate::store::{StoreError, outbox_key};
use crate::ticketing::OrderStatus;
use crate::ticketing::Price;
use crate::ticketing::payment::{
    Outcome, PayableOrder, PayableOrderStore, Payment, PaymentStatus, PaymentStore,
};
use crate::version::EventDisposition;

/// One isolated set of the payments service's stores.
#[derive(Clone)]
pub struct PaymentStores {
    /// Payments.
    pub payments: Arc<dyn PaymentStore>,
    /// The replica of orders.
    pub payable_orders: Arc<dyn PayableOrderStore>,
    /// The outbox the payments store commits its events to.
    pub outbox: Arc<dyn Outbox>,
}

/// Hands out isolated stores for the suite.
#[async_trait]
pub trait PaymentStoreFactory: Send + Sync {
    /// Fresh, empty stores that share nothing with any other call.
    async fn payment_stores(&self) -> PaymentStores;
}

fn price(text: &str) -> Price {
    text.parse().expect("price")
}

/// The event a charge announces in these cases.
fn announce(payment: &Payment) -> Result<Vec<OutgoingMessage>, PublishError> {
    Ok(vec![
        OutgoingMessage::new(
            "payment:created",
            format!(
                r#"{{"id":"{}","orderId":"{}","stripeId":"{}"}}"#,
                payment.id,
                payment.order_id,
                payment.charge_id.as_deref().unwrap_or_default()
            ),
        )
        .with_message_id(format!("payment:created:{}", payment.id)),
    ])
}

fn silent(_: &Payment) -> Result<Vec<OutgoingMessage>, PublishError> {
    Ok(Vec::new())
}

/// The pending events of payment `id`.
async fn events_of_payment(stores: &PaymentStores, id: Id) -> Vec<OutgoingMessage> {
    let key = outbox_key("payment", id);
    let pending = stores.outbox.pending(10_000).await.expect("pending");
    pending
        .into_iter()
        .filter(|e| e.key == key)
        .map(|e| e.message)
        .collect()
}

/// A pending attempt to pay 10 for `order` with `tok_visa`.
async fn begin(stores: &PaymentStores, order: Id) -> Result<Payment, StoreError> {
    let attempt = Payment::pending(order, price("10"), "tok_visa");
    stores.payments.begin(attempt).await
}

pub async fn a_payment_round_trips_with_exact_cents(factory: &dyn PaymentStoreFactory) {
    let stores = factory.payment_stores().await;
    // The source is kept: the repair of a crashed attempt asks the provider again with it.
    let attempt = Payment::pending(Id::new(), price("1234.56"), "pm_card_visa");
    let begun = stores.payments.begin(attempt.clone()).await.expect("begin");
    assert_eq!(begun, attempt);
    let read = stores.payments.get(attempt.id).await.expect("get");
    assert_eq!(read, attempt);
    assert_eq!(read.amount.cents(), 123_456);
    assert_eq!(read.source, "pm_card_visa");
    assert!(
        stores
            .payments
            .get(Id::new())
            .await
            .unwrap_err()
            .is_not_found()
    );
}

pub async fn an_order_has_at_most_one_open_attempt(factory: &dyn PaymentStoreFactory) {
    let stores = factory.payment_stores().await;
    let order = Id::new();
    begin(&stores, order).await.expect("first");
    let second = begin(&stores, order).await;
    assert!(
        matches!(second, Err(StoreError::AlreadyExists { .. })),
        "{second:?}"
    );
    begin(&stores, Id::new()).await.expect("another order");
    assert_eq!(
        stores.payments.for_order(order).await.expect("list").len(),
        1
    );
}

pub async fn of_concurrent_attempts_for_one_order_exactly_one_is_recorded(
    factory: &dyn PaymentStoreFactory,
) {
    let stores = factory.payment_stores().await;
    let order = Id::new();
    let attempts = (0..8).map(|_| {
        let payments = stores.payments.clone();
        async move {
            payments
                .begin(Payment::pending(order, price("10"), "tok_visa"))
                .await
        }
    });
    let results = join_all(attempts).await;
    let won = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(won, 1, "{results:?}");
    assert!(
        results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .all(|e| matches!(e, StoreError::AlreadyExists { .. })),
        "{results:?}"
    );
}

pub async fn a_charge_commits_its_event_and_keeps_the_order(factory: &dyn PaymentStoreFactory) {
    let stores = factory.payment_stores().await;
    let attempt = begin(&stores, Id::new()).await.expect("begin");
    let charged = stores
        .payments
        .settle_announcing(attempt.id, Outcome::Charged("ch_1".into()), &announce)
        .await
        .expect("charge");
    assert_eq!(
        (
            charged.status,
            charged.version,
            charged.charge_id.as_deref()
        ),
        (PaymentStatus::Succeeded, 1, Some("ch_1"))
    );
    assert_eq!(stores.payments.get(attempt.id).await.expect("get"), charged);
    let events = events_of_payment(&stores, attempt.id).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].subject, "payment:created");
    assert!(
        String::from_utf8_lossy(&events[0].payload).contains("ch_1"),
        "announced from the record as stored"
    );
    let again = begin(&stores, attempt.order_id).await;
    assert!(
        matches!(again, Err(StoreError::AlreadyExists { .. })),
        "paid: {again:?}"
    );
}

pub async fn a_declined_attempt_closes_and_frees_the_order_for_a_new_key(
    factory: &dyn PaymentStoreFactory,
) {
    let stores = factory.payment_stores().await;
    let order = Id::new();
    let first = begin(&stores, order).await.expect("begin");
    let declined = stores
        .payments
        .settle_announcing(
            first.id,
            Outcome::Declined("Your card was declined.".into()),
            &announce,
        )
        .await
        .expect("decline");
    assert_eq!(
        (
            declined.status,
            declined.version,
            declined.failure.as_deref()
        ),
        (PaymentStatus::Failed, 1, Some("Your card was declined."))
    );
    assert!(
        events_of_payment(&stores, first.id).await.is_empty(),
        "a decline announces nothing"
    );
    let second = begin(&stores, order)
        .await
        .expect("the order can be paid again");
    assert_ne!(second.idempotency_key, first.idempotency_key);
    let keys: HashSet<String> = stores
        .payments
        .for_order(order)
        .await
        .expect("list")
        .into_iter()
        .map(|p| p.id.to_string())
        .collect();
    assert_eq!(keys.len(), 2);
}

pub async fn an_attempt_ends_once(factory: &dyn PaymentStoreFactory) {
    let stores = factory.payment_stores().await;
    let attempt = begin(&stores, Id::new()).await.expect("begin");
    stores
        .payments
        .settle_announcing(attempt.id, Outcome::Charged("ch_1".into()), &silent)
        .await
        .expect("charge");
    for outcome in [
        Outcome::Charged("ch_2".into()),
        Outcome::Declined("no".into()),
    ] {
        let again = stores
            .payments
            .settle_announcing(attempt.id, outcome, &announce)
            .await;
        assert!(
            matches!(again, Err(StoreError::VersionConflict { .. })),
            "{again:?}"
        );
    }
    let stored = stores.payments.get(attempt.id).await.expect("get");
    assert_eq!(
        (stored.status, stored.version, stored.charge_id.as_deref()),
        (PaymentStatus::Succeeded, 1, Some("ch_1"))
    );
    assert!(
        events_of_payment(&stores, attempt.id).await.is_empty(),
        "refused changes commit no event"
    );
    let unknown = stores
        .payments
        .settle_announcing(Id::new(), Outcome::Charged("x".into()), &silent)
        .await;
    assert!(unknown.unwrap_err().is_not_found());
}

pub async fn only_a_charged_payment_is_refunded(factory: &dyn PaymentStoreFactory) {
    let stores = factory.payment_stores().await;
    let attempt = begin(&stores, Id::new()).await.expect("begin");
    assert!(matches!(
        stores.payments.refund(attempt.id).await,
        Err(StoreError::VersionConflict { .. })
    ));
    stores
        .payments
        .settle_announcing(attempt.id, Outcome::Charged("ch_1".into()), &silent)
        .await
        .expect("charge");
    let refunded = stores.payments.refund(attempt.id).await.expect("refund");
    assert_eq!(
        (refunded.status, refunded.version),
        (PaymentStatus::Refunded, 2)
    );
    assert!(matches!(
        stores.payments.refund(attempt.id).await,
        Err(StoreError::VersionConflict { .. })
    ));
}

pub async fn pending_attempts_are_listed_oldest_first(factory: &dyn PaymentStoreFactory) {
    let stores = factory.payment_stores().await;
    let mut begun = Vec::new();
    for _ in 0..4 {
        begun.push(begin(&stores, Id::new()).await.expect("begin"));
    }
    stores
        .payments
        .settle_announcing(begun[1].id, Outcome::Declined("no".into()), &silent)
        .await
        .expect("decline");
    let pending: Vec<Id> = stores
        .payments
        .pending(10)
        .await
        .expect("pending")
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(pending, vec![begun[0].id, begun[2].id, begun[3].id]);
    assert_eq!(stores.payments.pending(2).await.expect("pending").len(), 2);
}

pub async fn the_order_replica_follows_the_versioned_contract(factory: &dyn PaymentStoreFactory) {
    let stores = factory.payment_stores().await;
    let order = PayableOrder {
        id: Id::new(),
        user_id: Id::new(),
        price: price("19.99"),
        status: OrderStatus::Created,
        version: 0,
    };
    let lookup = stores
        .payable_orders
        .find_by_event(&order.id, 0)
        .await
        .expect("lookup");
    assert_eq!(lookup.disposition, EventDisposition::Apply);
    stores.payable_orders.apply(&order).await.expect("apply v0");
    assert_eq!(
        stores.payable_orders.get(&order.id).await.expect("get"),
        order
    );
    let skipped = PayableOrder {
        version: 2,
        ..order.clone()
    };
    assert!(matches!(
        stores.payable_orders.apply(&skipped).await,
        Err(StoreError::VersionConflict { .. })
    ));
    assert_eq!(
        stores
            .payable_orders
            .find_by_event(&order.id, 2)
            .await
            .expect("lookup")
            .disposition,
        EventDisposition::Gap
    );
    let cancelled = PayableOrder {
        status: OrderStatus::Cancelled,
        version: 1,
        ..order.clone()
    };
    stores
        .payable_orders
        .apply(&cancelled)
        .await
        .expect("apply v1");
    assert_eq!(
        stores
            .payable_orders
            .find_by_event(&order.id, 1)
            .await
            .expect("lookup")
            .disposition,
        EventDisposition::Duplicate
    );
    let read = stores.payable_orders.get(&order.id).await.expect("get");
    assert_eq!(
        (read.status, read.version, read.price.cents()),
        (OrderStatus::Cancelled, 1, 1999)
    );
    assert!(
        stores
            .payable_orders
            .get(&Id::new())
            .await
            .unwrap_err()
            .is_not_found()
    );
}

/// Expands one test per payment store case; see
/// [`bus_conformance_tests!`](crate::bus_conformance_tests) for the arguments.
#[macro_export]
macro_rules! payment_store_conformance_tests {
    (#[$attr:meta] factory = $factory:expr $(,)?) => {
        $crate::__conformance_cases!(
            #[$attr] [$factory] payments:
            a_payment_round_trips_with_exact_cents
            an_order_has_at_most_one_open_attempt
            of_concurrent_attempts_for_one_order_exactly_one_is_recorded
            a_charge_commits_its_event_and_keeps_the_order
            a_declined_attempt_closes_and_frees_the_order_for_a_new_key
            an_attempt_ends_once
            only_a_charged_payment_is_refunded
            pending_attempts_are_listed_oldest_first
            the_order_replica_follows_the_versioned_contract
        );
    };
}
