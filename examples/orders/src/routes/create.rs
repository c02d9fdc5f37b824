use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use ticketing_common::{ApiError, JsonBody, RequireUser};
use ticketing_core::Id;
use ticketing_core::ticketing::reservation::expires_at;
use ticketing_core::ticketing::store::NewOrder;

use crate::models::{OrderInput, OrderJson, announce_created};
use crate::startup::OrdersState;

/// `POST /api/orders {ticketId}`: 201 with the order (`created`, expiring after the window);
/// `order:created` is committed with it to the outbox. The reservation is atomic in the store: of concurrent orders for
/// one ticket exactly one succeeds, the others get 400 `Ticket is already reserved`.
#[utoipa::path(
    post, path = "/api/orders", tag = "orders",
    request_body(content = crate::models::OrderRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "The order, `created`, expiring after the window", body = OrderJson),
        (status = 400, description = "No ticket id, or the ticket is reserved", body = ticketing_common::error::ErrorBody),
        (status = 401, description = "Not signed in", body = ticketing_common::error::ErrorBody),
        (status = 404, description = "No such ticket", body = ticketing_common::error::ErrorBody),
        ticketing_common::error::BodyErrors,
    )
)]
#[tracing::instrument(name = "create_order", skip_all, fields(user = %user.id))]
pub async fn create(
    RequireUser(user): RequireUser,
    State(state): State<OrdersState>,
    body: JsonBody,
) -> Result<(StatusCode, Json<OrderJson>), ApiError> {
    let OrderInput { ticket_id } = OrderInput::try_from(&body)?;
    let new = NewOrder {
        id: Id::new(),
        user_id: user.id,
        ticket_id,
        expires_at: expires_at(state.clock.now(), state.expiration_window),
    };
    // An unknown ticket is a 404, a held one a 400 `Ticket is already reserved`.
    let order = state
        .orders
        .reserve_announcing(new, &announce_created)
        .await?;
    tracing::info!(order = %order.id, ticket = %order.ticket.id, "order created");
    Ok((StatusCode::CREATED, Json(order.into())))
}
