//! The payment as the API shows it, and the event it becomes.

use serde::Serialize;
use ticketing_common::{ApiError, JsonBody, Validation};
use ticketing_core::ticketing::events::PaymentCreated;
use ticketing_core::ticketing::payment::Payment;
use ticketing_core::{Id, OutgoingMessage, PublishError, outbox};

/// The answer of `POST /api/payments`: `{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PaymentJson {
    /// The payment id.
    #[schema(value_type = String, pattern = "^[0-9a-f]{24}$")]
    pub id: Id,
}

/// The answer of `GET /api/payments/provider`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderJson {
    /// `fake` or `stripe`.
    pub provider: String,
    /// Tokens the provider takes in test mode, the one that is charged first (the fake's
    /// `tok_visa`, `tok_chargeDeclined`); empty for Stripe.
    pub test_tokens: Vec<String>,
}

/// The body of `POST /api/payments`.
#[derive(Debug, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRequest {
    /// The card token from the client (`tok_visa` with the fake provider).
    #[schema(min_length = 1)]
    pub token: String,
    /// The order to pay for.
    #[schema(min_length = 1)]
    pub order_id: String,
}

/// A valid payment request: the token, and the order id as sent (a malformed one is a 404).
#[derive(Debug)]
pub struct PaymentInput {
    /// The card token.
    pub token: String,
    /// The order id as sent.
    pub order_id: String,
}

fn required(body: &JsonBody, field: &str) -> Result<String, String> {
    body.str(field)
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        // The original's message (express-validator's default).
        .ok_or_else(|| "Invalid value".to_owned())
}

impl TryFrom<&JsonBody> for PaymentInput {
    type Error = ApiError;

    fn try_from(body: &JsonBody) -> Result<Self, ApiError> {
        let (token, order_id) = Validation::both(
            ("token", required(body, "token")),
            ("orderId", required(body, "orderId")),
        )?;
        Ok(PaymentInput { token, order_id })
    }
}

/// Announces a charge: `payment:created {id, orderId, stripeId}`, committed with it.
pub fn announce_created(payment: &Payment) -> Result<Vec<OutgoingMessage>, PublishError> {
    outbox::announce(&PaymentCreated {
        id: payment.id,
        order_id: payment.order_id,
        stripe_id: payment.charge_id.clone().unwrap_or_default(),
    })
}
