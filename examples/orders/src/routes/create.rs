use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::Utc;
use ticketing_common::{ApiError, JsonBody, RequireUser};
use ticketing_core::reservation::expires_at;
use ticketing_core::store::NewOrder;
use ticketing_core::{Id, StoreError};

use crate::models::{OrderJson, created_event};
use crate::startup::OrdersState;

/// `POST /api/orders {ticketId}`: 201 with the order (`created`, expiring after the window);
/// publishes `order:created`. The reservation is atomic in the store: of concurrent orders for
/// one ticket exactly one succeeds, the others get 400 `Ticket is already reserved`.
#[tracing::instrument(name = "create_order", skip_all, fields(user = %user.id))]
pub async fn create(
    RequireUser(user): RequireUser,
    State(state): State<OrdersState>,
    body: JsonBody,
) -> Result<(StatusCode, Json<OrderJson>), ApiError> {
    let ticket_id = body
        .str("ticketId")
        .and_then(|id| Id::parse(id.trim()).ok())
        .ok_or_else(|| ApiError::field("ticketId", "TicketId must be provided"))?;
    let new = NewOrder {
        id: Id::new(),
        user_id: user.id,
        ticket_id,
        expires_at: expires_at(Utc::now(), state.expiration_window),
    };
    let order = match state.orders.reserve(new).await {
        Ok(order) => order,
        Err(StoreError::NotFound { .. }) => return Err(ApiError::NotFound),
        Err(StoreError::TicketReserved { .. }) => {
            return Err(ApiError::bad_request("Ticket is already reserved"));
        }
        Err(e) => return Err(ApiError::internal(e)),
    };
    state
        .created
        .publish(&created_event(&order))
        .await
        .map_err(ApiError::internal)?;
    tracing::info!(order = %order.id, ticket = %order.ticket.id, "order created");
    Ok((StatusCode::CREATED, Json(order.into())))
}
