use axum::Json;
use axum::extract::State;
use ticketing_common::ApiError;

use crate::models::TicketJson;
use crate::startup::TicketsState;

/// `GET /api/tickets`: the tickets no order holds, oldest first.
pub async fn index(State(state): State<TicketsState>) -> Result<Json<Vec<TicketJson>>, ApiError> {
    let tickets = state.tickets.list_unreserved().await?;
    Ok(Json(tickets.into_iter().map(Into::into).collect()))
}
