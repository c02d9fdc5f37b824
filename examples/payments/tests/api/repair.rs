//! Attempts left pending are settled by the repair with their own key: a crash between the
//! provider's charge and the commit charges once, not twice; a store that fails in the middle of
//! the handler (its failure mocked with mockall) gets a 503 and the repair settles the charge
//! made.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ticketing_core::ticketing::payment::{Outcome, Payment, PaymentStatus, PaymentStore};
use ticketing_core::ticketing::store::Announce;
use ticketing_core::{Id, StoreError};
use ticketing_payments::provider::{ChargeRequest, FakeProvider, PaymentProvider};
use ticketing_payments::settle::{Repair, RepairOptions, RepairReport};
use ticketing_payments::startup::Payments;
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

/// Where a store may fail: mocked (mockall), so the test says which call fails and how often
/// each is made.
#[mockall::automock]
trait Faults: Send + Sync + 'static {
    fn settle(&self, id: Id) -> Result<(), StoreError>;
}

/// A memory store that asks [`Faults`] before it settles.
struct Faulty {
    inner: Arc<dyn PaymentStore>,
    faults: MockFaults,
}

#[async_trait]
impl PaymentStore for Faulty {
    async fn begin(&self, payment: Payment) -> Result<Payment, StoreError> {
        self.inner.begin(payment).await
    }
    async fn settle_announcing(
        &self,
        id: Id,
        outcome: Outcome,
        announce: Announce<'_, Payment>,
    ) -> Result<Payment, StoreError> {
        self.faults.settle(id)?;
        self.inner.settle_announcing(id, outcome, announce).await
    }
    async fn refund(&self, id: Id) -> Result<Payment, StoreError> {
        self.inner.refund(id).await
    }
    async fn get(&self, id: Id) -> Result<Payment, StoreError> {
        self.inner.get(id).await
    }
    async fn for_order(&self, order_id: Id) -> Result<Vec<Payment>, StoreError> {
        self.inner.for_order(order_id).await
    }
    async fn pending(&self, limit: usize) -> Result<Vec<Payment>, StoreError> {
        self.inner.pending(limit).await
    }
}

#[tokio::test]
async fn a_store_error_after_the_charge_is_a_503_and_the_repair_settles_that_charge() {
    let mut faults = MockFaults::new();
    let mut calls = mockall::Sequence::new();
    faults
        .expect_settle()
        .times(1)
        .in_sequence(&mut calls)
        .returning(|_| {
            Err(StoreError::backend(
                "postgres",
                "connection reset in the middle of the commit",
            ))
        });
    faults
        .expect_settle()
        .times(1)
        .in_sequence(&mut calls)
        .returning(|_| Ok(()));

    let memory = kit::Memory::new().await;
    let provider = FakeProvider::new();
    let mut state = state_with(&memory, Arc::new(provider.clone()))
        .with_repair_every(Duration::from_millis(50));
    let payments = state.payments.clone();
    state.payments = Arc::new(Faulty {
        inner: payments.clone(),
        faults,
    });
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
}
