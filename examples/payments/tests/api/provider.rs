//! The handler against a mocked provider (mockall): a charge whose answer was lost is asked
//! again with the same idempotency key and charged once; a provider that stays down leaves the
//! attempt pending and answers 503; a decline charges nothing.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use mockall::Sequence;
use ticketing_core::Id;
use ticketing_core::ticketing::payment::{PaymentStatus, PaymentStore};
use ticketing_payments::provider::{ChargeRequest, PaymentProvider, ProviderError};
use ticketing_payments::startup::Payments;
use ticketing_test_app as kit;

use crate::pay::{pay_order, seed_order, state_with};

mockall::mock! {
    Provider {}

    #[async_trait]
    impl PaymentProvider for Provider {
        fn name(&self) -> &'static str;
        async fn charge(&self, request: &ChargeRequest) -> Result<String, ProviderError>;
        async fn refund(&self, charge_id: &str, idempotency_key: &str) -> Result<(), ProviderError>;
    }
}

/// The service charging through `provider`, a signed-in buyer's cookie, and an order of theirs.
async fn spawn_with(provider: MockProvider) -> (kit::TestApp, Arc<dyn PaymentStore>, String, Id) {
    let memory = kit::Memory::new().await;
    let state = state_with(&memory, Arc::new(provider));
    let payments = state.payments.clone();
    let app = kit::spawn::<Payments>(state).await;
    let (cookie, buyer) = kit::signed_in(&kit::keys());
    let order_id = seed_order(&memory, buyer).await;
    (app, payments, cookie, order_id)
}

#[tokio::test]
async fn a_charge_whose_answer_was_lost_is_asked_again_with_the_same_key_and_charged_once() {
    let keys_seen = Arc::new(Mutex::new(Vec::new()));
    let mut provider = MockProvider::new();
    let mut order = Sequence::new();
    // The charge went through, but its answer timed out; asked again, it is charged once.
    let answers = [
        Err(ProviderError::Unavailable("timed out".into())),
        Ok("ch_once".to_owned()),
    ];
    for answer in answers {
        let seen = keys_seen.clone();
        provider
            .expect_charge()
            .times(1)
            .in_sequence(&mut order)
            .return_once(move |request| {
                seen.lock().unwrap().push(request.idempotency_key.clone());
                answer
            });
    }
    let (app, payments, cookie, order_id) = spawn_with(provider).await;
    let response = pay_order(&app, &cookie, order_id, "tok_visa").await;
    assert_eq!(response.code(), 201);
    let keys = keys_seen.lock().unwrap().clone();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0], keys[1], "the retry carries the attempt's key");
    let attempts = payments.for_order(order_id).await.unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].charge_id.as_deref(), Some("ch_once"));
    assert_eq!(attempts[0].idempotency_key, keys[0]);
}

#[tokio::test]
async fn a_provider_that_stays_down_leaves_the_attempt_pending_and_answers_503() {
    let mut provider = MockProvider::new();
    provider
        .expect_charge()
        .times(3)
        .returning(|_| Err(ProviderError::Unavailable("connection refused".into())));
    let (app, payments, cookie, order_id) = spawn_with(provider).await;
    let response = pay_order(&app, &cookie, order_id, "tok_visa").await;
    assert_eq!(response.code(), 503);
    assert!(response.headers.get("retry-after").is_some());
    let attempts = payments.for_order(order_id).await.unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(
        attempts[0].status,
        PaymentStatus::Pending,
        "its outcome is unknown: kept, with its key, for a retry"
    );
    // A second request cannot start a second charge meanwhile.
    let response = pay_order(&app, &cookie, order_id, "tok_visa").await;
    assert_eq!(response.code(), 400);
}

#[tokio::test]
async fn a_decline_is_a_400_with_the_providers_message_and_charges_nothing() {
    let mut provider = MockProvider::new();
    provider.expect_charge().times(1).returning(|_| {
        Err(ProviderError::Declined {
            message: "Your card has insufficient funds.".into(),
            code: "card_declined".into(),
        })
    });
    provider.expect_refund().never();
    let (app, payments, cookie, order_id) = spawn_with(provider).await;
    let response = pay_order(&app, &cookie, order_id, "tok_visa").await;
    kit::assert_error(&response, 400, "Your card has insufficient funds.");
    let attempts = payments.for_order(order_id).await.unwrap();
    assert_eq!(attempts[0].status, PaymentStatus::Failed);
}
