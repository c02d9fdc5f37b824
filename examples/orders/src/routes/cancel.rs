use axum::extract::{Path, State};
use axum::http::StatusCode;
use ticketing_common::{ApiError, RequireUser};
use ticketing_core::StoreError;
use ticketing_core::reservation::{CancelOutcome, OrderStatus};

use super::owned_order;
use crate::models::cancelled_event;
use crate::startup::OrdersState;

/// `DELETE /api/orders/:id`: 204; the order becomes `cancelled` (version + 1) and
/// `order:cancelled` is published. A cancelled order: 204, nothing new. A complete order: 400.
#[tracing::instrument(name = "cancel_order", skip_all, fields(user = %user.id, order = %id))]
pub async fn cancel(
    RequireUser(user): RequireUser,
    State(state): State<OrdersState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    // A concurrent change (another cancel, an expiry) moves the version: look again.
    for _ in 0..5 {
        let order = owned_order(&state, &user, &id).await?;
        match order.status.cancel() {
            Ok(CancelOutcome::AlreadyCancelled) => return Ok(StatusCode::NO_CONTENT),
            Ok(CancelOutcome::Cancel) => {}
            Err(_) => return Err(ApiError::bad_request("Cannot cancel a completed order")),
        }
        match state
            .orders
            .set_status(order.id, order.version, OrderStatus::Cancelled)
            .await
        {
            Ok(cancelled) => {
                state
                    .cancelled
                    .publish(&cancelled_event(&cancelled))
                    .await
                    .map_err(ApiError::internal)?;
                tracing::info!(order = %cancelled.id, "order cancelled");
                return Ok(StatusCode::NO_CONTENT);
            }
            Err(StoreError::VersionConflict { .. }) => continue,
            Err(StoreError::Transition(_)) => {
                return Err(ApiError::bad_request("Cannot cancel a completed order"));
            }
            Err(e) => return Err(ApiError::internal(e)),
        }
    }
    Err(ApiError::internal(anyhow::anyhow!(
        "order {id} kept changing during the cancellation"
    )))
}
