use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use ticketing_common::{ApiError, JsonBody, RequireUser};
use ticketing_core::Id;
use ticketing_core::store::Ticket;

use crate::models::{TicketInput, TicketJson, created_event};
use crate::startup::TicketsState;

/// `POST /api/tickets {title, price}`: 201 with the ticket at version 0; publishes
/// `ticket:created` once it is stored.
#[tracing::instrument(name = "create_ticket", skip_all, fields(user = %user.id))]
pub async fn create(
    RequireUser(user): RequireUser,
    State(state): State<TicketsState>,
    body: JsonBody,
) -> Result<(StatusCode, Json<TicketJson>), ApiError> {
    let TicketInput { title, price } = TicketInput::try_from(&body)?;
    let ticket = state
        .tickets
        .create(Ticket {
            id: Id::new(),
            title,
            price,
            user_id: user.id,
            version: 0,
            order_id: None,
        })
        .await?;
    state
        .created
        .publish(&created_event(&ticket))
        .await
        .map_err(ApiError::internal)?;
    tracing::info!(ticket = %ticket.id, "ticket created");
    Ok((StatusCode::CREATED, Json(ticket.into())))
}
