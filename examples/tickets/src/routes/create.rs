use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use ticketing_common::{ApiError, JsonBody, RequireUser};
use ticketing_core::Id;
use ticketing_core::ticketing::store::Ticket;

use crate::models::{TicketInput, TicketJson, announce_created};
use crate::startup::TicketsState;

/// `POST /api/tickets {title, price}`: 201 with the ticket at version 0; `ticket:created` is
/// committed with it to the outbox, and the relay publishes it.
#[utoipa::path(
    post, path = "/api/tickets", tag = "tickets",
    request_body(content = crate::models::TicketRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "The ticket, at version 0", body = TicketJson),
        (status = 400, description = "A field is invalid", body = ticketing_common::error::ErrorBody),
        (status = 401, description = "Not signed in", body = ticketing_common::error::ErrorBody),
        ticketing_common::error::BodyErrors,
    )
)]
#[tracing::instrument(name = "create_ticket", skip_all, fields(user = %user.id))]
pub async fn create(
    RequireUser(user): RequireUser,
    State(state): State<TicketsState>,
    body: JsonBody,
) -> Result<(StatusCode, Json<TicketJson>), ApiError> {
    let TicketInput { title, price } = TicketInput::try_from(&body)?;
    let ticket = state
        .tickets
        .create_announcing(
            Ticket {
                id: Id::new(),
                title,
                price,
                user_id: user.id,
                version: 0,
                order_id: None,
            },
            &announce_created,
        )
        .await?;
    tracing::info!(ticket = %ticket.id, "ticket created");
    Ok((StatusCode::CREATED, Json(ticket.into())))
}
