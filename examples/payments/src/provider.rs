//! Payment providers: what charging a card and refunding a charge need, a fake that behaves like
//! Stripe's test mode for the tokens the original web client sends, and Stripe itself over its
//! HTTP API.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use ticketing_core::ticketing::payment::Payment;

/// A charge to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeRequest {
    /// Exact amount, in cents.
    pub amount_cents: u64,
    /// ISO currency, lowercase (`usd`).
    pub currency: String,
    /// The card token or payment method the client sent (`tok_visa`).
    pub source: String,
    /// The same for every call about this attempt: a retry after a timeout charges once.
    pub idempotency_key: String,
    /// Shown on the statement and in the provider's dashboard.
    pub description: String,
}

impl ChargeRequest {
    /// The charge an attempt asks for: every call about it, first or repeated, is this same
    /// request with its idempotency key.
    pub fn for_attempt(attempt: &Payment) -> ChargeRequest {
        ChargeRequest {
            amount_cents: attempt.amount.cents(),
            currency: "usd".into(),
            source: attempt.source.clone(),
            idempotency_key: attempt.idempotency_key.clone(),
            description: format!("Ticketing order {}", attempt.order_id),
        }
    }
}

/// What a provider can answer instead of a charge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// The card was refused: the message is the provider's, for the buyer.
    #[error("{message}")]
    Declined {
        /// The provider's message.
        message: String,
        /// The provider's code (`card_declined`).
        code: String,
    },
    /// The request is wrong in a way retrying cannot fix (an unknown token): the message is
    /// the provider's.
    #[error("{0}")]
    Invalid(String),
    /// The provider could not be reached or did not answer in time, or failed on its side:
    /// the outcome is unknown; retry with the same idempotency key.
    #[error("payment provider unavailable: {0}")]
    Unavailable(String),
}

/// A payment provider.
#[async_trait]
pub trait PaymentProvider: Send + Sync + 'static {
    /// Its name, as `PAYMENT_PROVIDER` says it (`fake`, `stripe`).
    fn name(&self) -> &'static str;

    /// Charges; the provider's charge id. The same idempotency key always means the same
    /// charge.
    async fn charge(&self, request: &ChargeRequest) -> Result<String, ProviderError>;

    /// Refunds a charge in full.
    async fn refund(&self, charge_id: &str, idempotency_key: &str) -> Result<(), ProviderError>;
}

/// A charge the fake provider made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeCharge {
    /// Its id (`ch_fake_…`).
    pub id: String,
    /// What was charged.
    pub request: ChargeRequest,
    /// Whether it was refunded.
    pub refunded: bool,
}

/// A provider in memory that behaves like Stripe's test mode for the tokens the original web
/// client sends: `tok_visa` (or `pm_card_visa`) is charged; `tok_chargeDeclined` (or
/// `pm_card_visa_chargeDeclined`, `pm_card_chargeCustomerFail`) is declined with
/// `card_declined`; any other token is invalid. It records charges and refunds, and honours idempotency keys: a repeated key
/// answers the first call's result and charges nothing more.
#[derive(Debug, Clone, Default)]
pub struct FakeProvider {
    state: Arc<Mutex<FakeState>>,
}

#[derive(Debug, Default)]
struct FakeState {
    charges: Vec<FakeCharge>,
    by_key: HashMap<String, Result<String, ProviderError>>,
    refund_keys: HashMap<String, String>,
}

/// The message Stripe's test mode gives a declined card.
pub const DECLINED_MESSAGE: &str = "Your card was declined.";

impl FakeProvider {
    /// The tokens the original web client sends: charged, then declined.
    pub const TEST_TOKENS: [&'static str; 2] = ["tok_visa", "tok_chargeDeclined"];

    /// A provider with no charges.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every charge made, in order.
    pub fn charges(&self) -> Vec<FakeCharge> {
        self.lock().charges.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl PaymentProvider for FakeProvider {
    fn name(&self) -> &'static str {
        "fake"
    }

    async fn charge(&self, request: &ChargeRequest) -> Result<String, ProviderError> {
        let mut state = self.lock();
        if let Some(answer) = state.by_key.get(&request.idempotency_key) {
            return answer.clone();
        }
        let answer = match request.source.as_str() {
            "tok_visa" | "pm_card_visa" => {
                let id = format!("ch_fake_{}", ticketing_core::Id::new());
                state.charges.push(FakeCharge {
                    id: id.clone(),
                    request: request.clone(),
                    refunded: false,
                });
                Ok(id)
            }
            "tok_chargeDeclined" | "pm_card_visa_chargeDeclined" | "pm_card_chargeCustomerFail" => {
                Err(ProviderError::Declined {
                    message: DECLINED_MESSAGE.to_owned(),
                    code: "card_declined".to_owned(),
                })
            }
            other => Err(ProviderError::Invalid(format!("No such token: '{other}'"))),
        };
        state
            .by_key
            .insert(request.idempotency_key.clone(), answer.clone());
        answer
    }

    async fn refund(&self, charge_id: &str, idempotency_key: &str) -> Result<(), ProviderError> {
        let mut state = self.lock();
        if state.refund_keys.get(idempotency_key).map(String::as_str) == Some(charge_id) {
            return Ok(());
        }
        let Some(charge) = state.charges.iter_mut().find(|c| c.id == charge_id) else {
            return Err(ProviderError::Invalid(format!(
                "No such charge: '{charge_id}'"
            )));
        };
        if charge.refunded {
            return Err(ProviderError::Invalid(format!(
                "Charge {charge_id} has already been refunded."
            )));
        }
        charge.refunded = true;
        state
            .refund_keys
            .insert(idempotency_key.to_owned(), charge_id.to_owned());
        Ok(())
    }
}

/// Stripe over its HTTP API: `POST /v1/charges` and `POST /v1/refunds`, form-encoded, with the
/// secret key as the user of basic auth and an `Idempotency-Key` on every call.
#[derive(Debug, Clone)]
pub struct StripeProvider {
    http: reqwest::Client,
    base_url: String,
    key: String,
}

impl StripeProvider {
    /// Stripe at `base_url` (`https://api.stripe.com`, or a test server) with secret `key`.
    pub fn new(base_url: impl Into<String>, key: impl Into<String>) -> Self {
        StripeProvider {
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(20))
                .build()
                .unwrap_or_default(),
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            key: key.into(),
        }
    }

    async fn post(
        &self,
        path: &str,
        idempotency_key: &str,
        form: &[(&str, String)],
    ) -> Result<serde_json::Value, ProviderError> {
        let response = self
            .http
            .post(format!("{}{path}", self.base_url))
            .basic_auth(&self.key, Some(""))
            .header("Idempotency-Key", idempotency_key)
            .form(form)
            .send()
            .await
            .map_err(|e| ProviderError::Unavailable(e.without_url().to_string()))?;
        let status = response.status();
        let body: serde_json::Value = response
            .json()
            .await
            .map_err(|e| ProviderError::Unavailable(format!("unreadable answer: {e}")))?;
        if status.is_success() {
            return Ok(body);
        }
        let error = &body["error"];
        let message = error["message"]
            .as_str()
            .unwrap_or("The payment provider refused the request")
            .to_owned();
        // Our key refused (401, 403) is our misconfiguration, not the buyer's card: nothing was
        // charged, the attempt stays pending and is settled once the key is fixed.
        if status.is_server_error() || matches!(status.as_u16(), 401 | 403 | 429) {
            return Err(ProviderError::Unavailable(format!("{status}: {message}")));
        }
        // Stripe says `card_error`; localstripe answers a decline 402 with `card_declined`.
        if error["type"] == "card_error" || status.as_u16() == 402 {
            return Err(ProviderError::Declined {
                message,
                code: error["code"].as_str().unwrap_or("card_declined").to_owned(),
            });
        }
        Err(ProviderError::Invalid(message))
    }
}

#[async_trait]
impl PaymentProvider for StripeProvider {
    fn name(&self) -> &'static str {
        "stripe"
    }

    async fn charge(&self, request: &ChargeRequest) -> Result<String, ProviderError> {
        let body = self
            .post(
                "/v1/charges",
                &request.idempotency_key,
                &[
                    ("amount", request.amount_cents.to_string()),
                    ("currency", request.currency.clone()),
                    ("source", request.source.clone()),
                    ("description", request.description.clone()),
                ],
            )
            .await?;
        body["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| ProviderError::Unavailable("a charge without an id".into()))
    }

    async fn refund(&self, charge_id: &str, idempotency_key: &str) -> Result<(), ProviderError> {
        self.post(
            "/v1/refunds",
            idempotency_key,
            &[("charge", charge_id.to_owned())],
        )
        .await
        .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(source: &str, key: &str) -> ChargeRequest {
        ChargeRequest {
            amount_cents: 1999,
            currency: "usd".into(),
            source: source.into(),
            idempotency_key: key.into(),
            description: "order".into(),
        }
    }

    #[tokio::test]
    async fn the_fake_charges_tok_visa_and_declines_tok_charge_declined() {
        let fake = FakeProvider::new();
        let id = fake.charge(&request("tok_visa", "k1")).await.unwrap();
        assert!(id.starts_with("ch_fake_"));
        assert_eq!(
            fake.charge(&request("tok_chargeDeclined", "k2")).await,
            Err(ProviderError::Declined {
                message: DECLINED_MESSAGE.into(),
                code: "card_declined".into()
            })
        );
        assert!(matches!(
            fake.charge(&request("tok_nonsense", "k3")).await,
            Err(ProviderError::Invalid(_))
        ));
        let charges = fake.charges();
        assert_eq!(charges.len(), 1);
        assert_eq!(charges[0].request.amount_cents, 1999);
    }

    #[tokio::test]
    async fn the_fake_honours_idempotency_keys() {
        let fake = FakeProvider::new();
        let first = fake.charge(&request("tok_visa", "same")).await.unwrap();
        let again = fake.charge(&request("tok_visa", "same")).await.unwrap();
        assert_eq!(first, again);
        assert_eq!(fake.charges().len(), 1, "one charge for one key");
        fake.refund(&first, "r1").await.unwrap();
        fake.refund(&first, "r1").await.unwrap();
        assert!(fake.charges()[0].refunded);
        assert!(matches!(
            fake.refund(&first, "r2").await,
            Err(ProviderError::Invalid(_))
        ));
    }
}
