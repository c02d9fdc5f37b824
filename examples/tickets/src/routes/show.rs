use axum::Json;
use axum::extract::State;
use ticketing_common::{ApiError, PathId};

use crate::models::TicketJson;
use crate::startup::TicketsState;

/// `GET /api/tickets/:id`: the ticket; 404 for an unknown or malformed id.
pub async fn show(
    State(state): State<TicketsState>,
    id: PathId,
) -> Result<Json<TicketJson>, ApiError> {
    Ok(Json(state.tickets.get(id.get()?).await?.into()))
}
