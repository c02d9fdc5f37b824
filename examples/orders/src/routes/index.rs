use axum::Json;
use axum::extract::State;
use ticketing_common::{ApiError, RequireUser};

use crate::models::OrderJson;
use crate::startup::OrdersState;

/// `GET /api/orders`: the user's orders, oldest first, each with its ticket.
#[utoipa::path(
    get, path = "/api/orders", tag = "orders",
    responses(
        (status = 200, description = "The caller's orders, oldest first", body = Vec<OrderJson>),
        (status = 401, description = "Not signed in", body = ticketing_common::error::ErrorBody),
        ticketing_common::error::EdgeErrors,
    )
)]
pub async fn index(
    RequireUser(user): RequireUser,
    State(state): State<OrdersState>,
) -> Result<Json<Vec<OrderJson>>, ApiError> {
    let orders = state.orders.list_for_user(user.id).await?;
    Ok(Json(orders.into_iter().map(Into::into).collect()))
}
