//! The Stripe provider against localstripe (a stateful Stripe test server from PyPI, started by
//! `scripts/test` at `LOCALSTRIPE_URL`, default `http://127.0.0.1:8420`): the request mapping,
//! a charge, a decline and a refund, read back from the server; and a payment through the
//! service. localstripe wants payment-method sources (`pm_card_visa`; `pm_card_chargeCustomerFail`
//! is its declined card) rather than `tok_*`, and ignores idempotency keys: those are covered by
//! the fake and the mocks.

use std::sync::Arc;

use serde_json::Value;
use ticketing_core::ticketing::payment::PaymentStatus;
use ticketing_payments::provider::{ChargeRequest, PaymentProvider, ProviderError, StripeProvider};
use ticketing_payments::startup::Payments;
use ticketing_test_app as kit;

use crate::pay::{pay_order, seed_order, state_with};

const KEY: &str = "sk_test_ticketing";

fn localstripe() -> String {
    std::env::var("LOCALSTRIPE_URL").unwrap_or_else(|_| "http://127.0.0.1:8420".into())
}

fn stripe() -> StripeProvider {
    StripeProvider::new(localstripe(), KEY)
}

fn request(source: &str, cents: u64) -> ChargeRequest {
    ChargeRequest {
        amount_cents: cents,
        currency: "usd".into(),
        source: source.into(),
        idempotency_key: format!("test-{}", ticketing_core::Id::new()),
        description: "Ticketing order test".into(),
    }
}

/// The charge as localstripe holds it.
async fn charge_at_stripe(id: &str) -> Value {
    let response = reqwest::Client::new()
        .get(format!("{}/v1/charges/{id}", localstripe()))
        .basic_auth(KEY, Some(""))
        .send()
        .await
        .expect("localstripe answers (scripts/test starts it)");
    assert!(response.status().is_success(), "{response:?}");
    response.json().await.unwrap()
}

#[tokio::test]
async fn a_charge_is_made_with_the_exact_amount_currency_source_and_description() {
    let id = stripe()
        .charge(&request("pm_card_visa", 1999))
        .await
        .expect("charged");
    assert!(id.starts_with("ch_"), "{id}");
    let charge = charge_at_stripe(&id).await;
    assert_eq!(charge["amount"], 1999);
    assert_eq!(charge["currency"], "usd");
    assert_eq!(charge["description"], "Ticketing order test");
    assert_eq!(charge["status"], "succeeded");
    assert_eq!(charge["paid"], true);
    assert_eq!(charge["amount_refunded"], 0);
}

#[tokio::test]
async fn a_declined_card_is_a_decline_with_stripes_message() {
    assert_eq!(
        stripe()
            .charge(&request("pm_card_chargeCustomerFail", 1999))
            .await,
        Err(ProviderError::Declined {
            message: "Your card was declined.".into(),
            code: "card_declined".into()
        })
    );
}

#[tokio::test]
async fn a_refund_gives_the_whole_charge_back() {
    let provider = stripe();
    let id = provider
        .charge(&request("pm_card_visa", 2500))
        .await
        .unwrap();
    provider.refund(&id, &format!("refund-{id}")).await.unwrap();
    let charge = charge_at_stripe(&id).await;
    assert_eq!(charge["amount_refunded"], 2500);
    assert_eq!(charge["refunded"], true);
}

#[tokio::test]
async fn refusals_and_outages_are_told_apart() {
    // A source Stripe does not know: invalid, not worth a retry.
    assert!(matches!(
        stripe().charge(&request("nonsense", 1999)).await,
        Err(ProviderError::Invalid(_))
    ));
    // A wrong key: our misconfiguration, not the buyer's card — the attempt waits for a fix
    // (unavailable), and the message never carries the key.
    match StripeProvider::new(localstripe(), "")
        .charge(&request("pm_card_visa", 1999))
        .await
    {
        Err(ProviderError::Unavailable(message)) => assert!(!message.contains(KEY), "{message}"),
        other => panic!("expected the key refused, got {other:?}"),
    }
    // Nobody there: the outcome is unknown, retried with the same key.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    assert!(matches!(
        StripeProvider::new(address, KEY)
            .charge(&request("pm_card_visa", 1999))
            .await,
        Err(ProviderError::Unavailable(_))
    ));
}

#[tokio::test]
async fn the_service_pays_an_order_through_stripe() {
    let memory = kit::Memory::new().await;
    let state = state_with(&memory, Arc::new(stripe()));
    let payments = state.payments.clone();
    let app = kit::spawn::<Payments>(state).await;
    let (cookie, buyer) = kit::signed_in(&kit::keys());

    let declined = seed_order(&memory, buyer).await;
    let response = pay_order(&app, &cookie, declined, "pm_card_chargeCustomerFail").await;
    kit::assert_error(&response, 400, "Your card was declined.");

    let order = seed_order(&memory, buyer).await;
    let response = pay_order(&app, &cookie, order, "pm_card_visa").await;
    assert_eq!(response.code(), 201);
    let attempt = &payments.for_order(order).await.unwrap()[0];
    assert_eq!(attempt.status, PaymentStatus::Succeeded);
    let charge = charge_at_stripe(attempt.charge_id.as_deref().unwrap()).await;
    assert_eq!(charge["amount"], 1999, "the order's price in cents");
    assert_eq!(charge["description"], format!("Ticketing order {order}"));
}
