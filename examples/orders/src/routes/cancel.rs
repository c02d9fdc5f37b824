use axum::extract::State;
use axum::http::StatusCode;
use ticketing_common::{ApiError, PathId, RequireUser};
use ticketing_core::StoreError;
use ticketing_core::ticketing::reservation::{CancelOutcome, OrderStatus};

use super::owned_order;
use crate::models::change_status;
use crate::startup::OrdersState;

/// How often a cancellation that loses its version check (to another cancel, an expiry)
/// reads the order again before answering 409.
const ATTEMPTS: usize = 5;

/// `DELETE /api/orders/:id`: 204; the order becomes `cancelled` (version + 1) and
/// `order:cancelled` is committed with the change. A cancelled order: 204, nothing new. A complete order: 400.
#[utoipa::path(
    delete, path = "/api/orders/{id}", tag = "orders",
    params(("id" = String, Path, description = "The order's id")),
    responses(
        (status = 204, description = "Cancelled (or already cancelled)"),
        (status = 400, description = "The order is complete", body = ticketing_common::error::ErrorBody),
        (status = 401, description = "Not signed in, or not the buyer", body = ticketing_common::error::ErrorBody),
        (status = 404, description = "No such order", body = ticketing_common::error::ErrorBody),
        ticketing_common::error::EdgeErrors,
        (status = 409, description = "Concurrent changes kept winning", body = ticketing_common::error::ErrorBody),
    )
)]
#[tracing::instrument(name = "cancel_order", skip_all, fields(user = %user.id, order = %id))]
pub async fn cancel(
    RequireUser(user): RequireUser,
    State(state): State<OrdersState>,
    id: PathId,
) -> Result<StatusCode, ApiError> {
    let mut attempt = 1;
    loop {
        let order = owned_order(&state, &user, id).await?;
        match order.status.cancel() {
            Ok(CancelOutcome::AlreadyCancelled) => return Ok(StatusCode::NO_CONTENT),
            Ok(CancelOutcome::Cancel) => {}
            Err(rule) => return Err(StoreError::from(rule).into()),
        }
        match change_status(&*state.orders, &order, OrderStatus::Cancelled).await {
            Ok(cancelled) => {
                tracing::info!(order = %cancelled.id, "order cancelled");
                return Ok(StatusCode::NO_CONTENT);
            }
            Err(StoreError::VersionConflict { .. }) if attempt < ATTEMPTS => attempt += 1,
            Err(e) => return Err(e.into()),
        }
    }
}
