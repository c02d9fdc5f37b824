//! Attempts left pending are settled by the repair with their own key: a crash between the
//! provider's charge and the commit charges once, not twice; a store that fails in the middle of
//! the handler (a failure injected into the in-memory store) gets a 503 and the repair settles
//! the charge made.

use std::sync::Arc;
use std::time::Duration;

use ticketing_core::ticketing::payment::{Payment, PaymentStatus};
use ticketing_core::{Id, StoreError};
use ticketing_payments::provider::{ChargeRequest, FakeProvider, PaymentProvider};
use ticketing_payments::settle::{Repair, RepairOptions, RepairReport};
use ticketing_payments::startup::Payments;
use ticketing_store::Database;
use ticketing_store::memory::StoreWrite;
use ticketing_test_app as kit;

use crate::pay::{pay_order, seed_order, state_with};

fn price() -> ticketing_core::ticketing::Price {
    "19.99".parse().unwrap()
}

#[tokio::test]
async fn a_crash_between_the_charge_and_the_commit_is_repaired_with_one_charge() {
    let memory = kit::Memory::new().await;
    let payments = memory.database.payments();
    let provider = FakeProvider::new();
    let (charged, declined) = (Id::new(), Id::new());
    // Both attempts were recorded, the provider called, and the process died before the
    // commit: one was charged, the other declined.
    let paid = payments
        .begin(Payment::pending(charged, price(), "tok_visa"))
        .await
        .unwrap();
    let refused = payments
        .begin(Payment::pending(declined, price(), "tok_chargeDeclined"))
        .await
        .unwrap();
    let first_charge = provider
        .charge(&ChargeRequest::for_attempt(&paid))
        .await
        .unwrap();
    provider
        .charge(&ChargeRequest::for_attempt(&refused))
        .await
        .unwrap_err();

    let mut repair = Repair::new(RepairOptions::default());
    assert_eq!(
        repair.look(&*payments, &provider).await.unwrap(),
        RepairReport {
            pending: 2,
            ..RepairReport::default()
        },
        "the first look only notes them: a request may still be settling them"
    );
    assert_eq!(
        repair.look(&*payments, &provider).await.unwrap(),
        RepairReport {
            charged: 1,
            declined: 1,
            pending: 0
        }
    );
    assert_eq!(provider.charges().len(), 1, "asked again with the same key");
    let paid = payments.get(paid.id).await.unwrap();
    assert_eq!(paid.status, PaymentStatus::Succeeded);
    assert_eq!(paid.charge_id, Some(first_charge));
    assert_eq!(
        payments.get(refused.id).await.unwrap().status,
        PaymentStatus::Failed
    );
    // The charge is announced with the repair, as with the request.
    let events = memory.database.outbox().pending(100).await.unwrap();
    assert_eq!(
        events
            .iter()
            .filter(|e| e.message.subject == "payment:created")
            .count(),
        1
    );
    assert_eq!(
        repair.look(&*payments, &provider).await.unwrap(),
        RepairReport::default()
    );
}

#[tokio::test]
async fn a_store_error_after_the_charge_is_a_503_and_the_repair_settles_that_charge() {
    let memory = kit::Memory::new().await;
    let Database::Memory(database) = &memory.database else {
        unreachable!("the test kit's database is in memory")
    };
    // The first settle fails as a connection lost in the middle of the commit; the next one
    // (the repair's) goes through.
    let faults = database.faults();
    faults.fail(StoreWrite::PaymentSettle, 1, || {
        StoreError::backend("postgres", "connection reset in the middle of the commit")
    });
    let provider = FakeProvider::new();
    let state = state_with(&memory, Arc::new(provider.clone()))
        .with_repair_every(Duration::from_millis(50));
    let payments = state.payments.clone();
    let app = kit::spawn::<Payments>(state).await;
    let (cookie, buyer) = kit::signed_in(&kit::keys());
    let order = seed_order(&memory, buyer).await;

    let response = pay_order(&app, &cookie, order, "tok_visa").await;
    assert_eq!(response.code(), 503, "not a 500: it is being settled");
    assert!(response.headers.get("retry-after").is_some());
    assert_eq!(provider.charges().len(), 1, "the card was charged");

    let settled = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let attempts = payments.for_order(order).await.unwrap();
            if attempts[0].status != PaymentStatus::Pending {
                return attempts[0].clone();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the repair settles the attempt");
    assert_eq!(settled.status, PaymentStatus::Succeeded);
    let charges = provider.charges();
    assert_eq!(charges.len(), 1, "one charge, not two");
    assert_eq!(settled.charge_id.as_deref(), Some(charges[0].id.as_str()));
    assert_eq!(
        faults.calls(StoreWrite::PaymentSettle),
        2,
        "the request's settle, then the repair's"
    );
}
