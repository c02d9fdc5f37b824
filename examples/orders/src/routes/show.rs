use axum::Json;
use axum::extract::State;
use ticketing_common::{ApiError, PathId, RequireUser};

use super::owned_order;
use crate::models::OrderJson;
use crate::startup::OrdersState;

/// `GET /api/orders/:id`: the order, to its owner; 404 unknown, 401 someone else's.
#[utoipa::path(
    get, path = "/api/orders/{id}", tag = "orders",
    params(("id" = String, Path, description = "The order's id")),
    responses(
        (status = 200, description = "The order", body = OrderJson),
        (status = 401, description = "Not signed in, or not the buyer", body = ticketing_common::error::ErrorBody),
        (status = 404, description = "No such order", body = ticketing_common::error::ErrorBody),
        ticketing_common::error::EdgeErrors,
    )
)]
pub async fn show(
    RequireUser(user): RequireUser,
    State(state): State<OrdersState>,
    id: PathId,
) -> Result<Json<OrderJson>, ApiError> {
    Ok(Json(owned_order(&state, &user, id).await?.into()))
}
