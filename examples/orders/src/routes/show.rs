use axum::Json;
use axum::extract::State;
use ticketing_common::{ApiError, PathId, RequireUser};

use super::owned_order;
use crate::models::OrderJson;
use crate::startup::OrdersState;

/// `GET /api/orders/:id`: the order, to its owner; 404 unknown, 401 someone else's.
pub async fn show(
    RequireUser(user): RequireUser,
    State(state): State<OrdersState>,
    id: PathId,
) -> Result<Json<OrderJson>, ApiError> {
    Ok(Json(owned_order(&state, &user, id).await?.into()))
}
