use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use ticketing_common::{ApiError, JsonBody, RequireUser, path_id};
use ticketing_core::StoreError;
use ticketing_core::ticketing::payment::Payment;
use ticketing_core::ticketing::reservation::OrderStatus;

use crate::models::{PaymentInput, PaymentJson};
use crate::settle::{Settled, charge_and_settle};
use crate::startup::PaymentsState;

/// How often a charge whose outcome is unknown (a timeout) is asked again, with the same
/// idempotency key, before the request gives up and leaves the attempt to the repair.
const ATTEMPTS: usize = 3;

/// `POST /api/payments {token, orderId}`: 201 `{id}`; the order's price is charged in exact
/// cents and `payment:created` is committed with the payment. Guards in order: signed in (401),
/// valid body (400), known order (404), the buyer's (401), not cancelled (400), not paid (400 —
/// also for the losers of concurrent requests: the store records one attempt per order). A
/// declined card is a 400 with the provider's message and leaves the order payable.
#[utoipa::path(
    post, path = "/api/payments", tag = "payments",
    request_body(content = crate::models::PaymentRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Charged: the payment's id", body = PaymentJson),
        (status = 400, description = "A field is missing, the order is cancelled or paid, or the card was declined", body = ticketing_common::error::ErrorBody),
        (status = 401, description = "Not signed in, or not the buyer", body = ticketing_common::error::ErrorBody),
        (status = 404, description = "No such order (yet)", body = ticketing_common::error::ErrorBody),
        ticketing_common::error::BodyErrors,
        (status = 503, description = "The provider did not answer, or the payment could not be recorded; the attempt is settled later with the same idempotency key", body = ticketing_common::error::ErrorBody),
    )
)]
#[tracing::instrument(name = "pay", skip_all, fields(user = %user.id))]
pub async fn create(
    RequireUser(user): RequireUser,
    State(state): State<PaymentsState>,
    body: JsonBody,
) -> Result<(StatusCode, Json<PaymentJson>), ApiError> {
    let PaymentInput { token, order_id } = PaymentInput::try_from(&body)?;
    let order = state.orders.get(&path_id(&order_id)?).await?;
    if order.user_id != user.id {
        return Err(ApiError::NotAuthorized);
    }
    match order.status {
        OrderStatus::Cancelled => {
            return Err(ApiError::bad_request("Cannot pay for an cancelled order"));
        }
        OrderStatus::Complete => return Err(ApiError::bad_request("Order has already been paid")),
        OrderStatus::Created | OrderStatus::AwaitingPayment => {}
    }
    // The pending record, with its idempotency key, exists before the provider is called.
    let attempt = match state
        .payments
        .begin(Payment::pending(order.id, order.price, token))
        .await
    {
        Ok(attempt) => attempt,
        Err(StoreError::AlreadyExists { .. }) => {
            return Err(ApiError::bad_request("Order has already been paid"));
        }
        Err(e) => return Err(e.into()),
    };
    let settled = match charge_and_settle(&*state.payments, &*state.provider, &attempt, ATTEMPTS)
        .await
    {
        Ok(Settled::Done(settled)) => settled,
        Ok(Settled::Unknown(_)) => return Err(ApiError::Busy { retry_after: 5 }),
        // The charge may have gone through: the attempt stays pending and the repair settles
        // it with the same key; the buyer is told to look again, not that it failed.
        Err(error) => {
            tracing::error!(%error, payment = %attempt.id, "the payment could not be recorded; the repair settles it");
            return Err(ApiError::Busy { retry_after: 5 });
        }
    };
    match (settled.charge_id, settled.failure) {
        (Some(charge), _) => {
            tracing::info!(payment = %settled.id, order = %order.id, %charge, "order paid");
            Ok((StatusCode::CREATED, Json(PaymentJson { id: settled.id })))
        }
        (None, failure) => Err(ApiError::bad_request(
            failure.unwrap_or_else(|| "The card was declined".into()),
        )),
    }
}
