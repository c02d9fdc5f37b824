use axum::Json;
use axum::extract::State;
use ticketing_common::{ApiError, JsonBody, PathId, RequireUser};
use ticketing_core::StoreError;
use ticketing_core::ticketing::store::Ticket;

use crate::models::{TicketInput, TicketJson, announce_updated};
use crate::startup::TicketsState;

/// How often an edit that loses its version check to a reservation or another edit reads
/// the ticket again before answering 409.
const ATTEMPTS: usize = 5;

/// `PUT /api/tickets/:id {title, price}`: 200 with the ticket at version + 1; `ticket:updated`
/// is committed with the change. Guards in order: signed in (401), valid body (400), known id (404), owner
/// (401), not reserved (400); 409 if concurrent changes keep winning the version check.
#[utoipa::path(
    put, path = "/api/tickets/{id}", tag = "tickets",
    params(("id" = String, Path, description = "The ticket's id")),
    request_body(content = crate::models::TicketRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The ticket, at version + 1", body = TicketJson),
        (status = 400, description = "A field is invalid, or the ticket is reserved", body = ticketing_common::error::ErrorBody),
        (status = 401, description = "Not signed in, or not the seller", body = ticketing_common::error::ErrorBody),
        (status = 404, description = "No such ticket", body = ticketing_common::error::ErrorBody),
        (status = 409, description = "Concurrent changes kept winning", body = ticketing_common::error::ErrorBody),
        ticketing_common::error::BodyErrors,
    )
)]
#[tracing::instrument(name = "update_ticket", skip_all, fields(user = %user.id, ticket = %id))]
pub async fn update(
    RequireUser(user): RequireUser,
    State(state): State<TicketsState>,
    id: PathId,
    body: JsonBody,
) -> Result<Json<TicketJson>, ApiError> {
    let TicketInput { title, price } = TicketInput::try_from(&body)?;
    let id = id.get()?;
    let mut attempt = 1;
    loop {
        let ticket = state.tickets.get(id).await?;
        if ticket.user_id != user.id {
            return Err(ApiError::NotAuthorized);
        }
        if ticket.order_id.is_some() {
            return Err(ApiError::bad_request("Cannot edit a reserved ticket"));
        }
        let edited = Ticket {
            title: title.clone(),
            price,
            ..ticket
        };
        match state
            .tickets
            .update_announcing(&edited, &announce_updated)
            .await
        {
            Ok(updated) => return Ok(Json(updated.into())),
            // A reservation or another edit landed between our read and our write: look again.
            Err(StoreError::VersionConflict { .. }) if attempt < ATTEMPTS => attempt += 1,
            Err(e) => return Err(e.into()),
        }
    }
}
