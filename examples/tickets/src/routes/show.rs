use axum::Json;
use axum::extract::State;
use ticketing_common::{ApiError, PathId};

use crate::models::TicketJson;
use crate::startup::TicketsState;

/// `GET /api/tickets/:id`: the ticket; 404 for an unknown or malformed id.
#[utoipa::path(
    get, path = "/api/tickets/{id}", tag = "tickets",
    params(("id" = String, Path, description = "The ticket's id")),
    responses(
        (status = 200, description = "The ticket", body = TicketJson),
        (status = 404, description = "No such ticket", body = ticketing_common::error::ErrorBody),
        ticketing_common::error::EdgeErrors,
    )
)]
pub async fn show(
    State(state): State<TicketsState>,
    id: PathId,
) -> Result<Json<TicketJson>, ApiError> {
    Ok(Json(state.tickets.get(id.get()?).await?.into()))
}
