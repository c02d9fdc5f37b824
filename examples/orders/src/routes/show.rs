use axum::Json;
use axum::extract::{Path, State};
use ticketing_common::{ApiError, RequireUser};

use super::owned_order;
use crate::models::OrderJson;
use crate::startup::OrdersState;

/// `GET /api/orders/:id`: the order, to its owner; 404 unknown, 401 someone else's.
pub async fn show(
    RequireUser(user): RequireUser,
    State(state): State<OrdersState>,
    Path(id): Path<String>,
) -> Result<Json<OrderJson>, ApiError> {
    Ok(Json(owned_order(&state, &user, &id).await?.into()))
}
