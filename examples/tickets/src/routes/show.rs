use axum::Json;
use axum::extract::{Path, State};
use ticketing_common::{ApiError, path_id};

use crate::models::TicketJson;
use crate::startup::TicketsState;

/// `GET /api/tickets/:id`: the ticket; 404 for an unknown or malformed id.
pub async fn show(
    State(state): State<TicketsState>,
    Path(id): Path<String>,
) -> Result<Json<TicketJson>, ApiError> {
    Ok(Json(state.tickets.get(path_id(&id)?).await?.into()))
}
