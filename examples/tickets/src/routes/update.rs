use axum::Json;
use axum::extract::{Path, State};
use ticketing_common::{ApiError, JsonBody, RequireUser, Validation, path_id};
use ticketing_core::StoreError;
use ticketing_core::store::Ticket;

use crate::models::{TicketJson, price_of, title_of, updated_event};
use crate::startup::TicketsState;

/// `PUT /api/tickets/:id {title, price}`: 200 with the ticket at version + 1; publishes
/// `ticket:updated`. Guards in order: signed in (401), valid body (400), known id (404), owner
/// (401), not reserved (400).
#[tracing::instrument(name = "update_ticket", skip_all, fields(user = %user.id, ticket = %id))]
pub async fn update(
    RequireUser(user): RequireUser,
    State(state): State<TicketsState>,
    Path(id): Path<String>,
    body: JsonBody,
) -> Result<Json<TicketJson>, ApiError> {
    let mut rules = Validation::new();
    let title = rules.check("title", title_of(body.get("title")));
    let price = rules.check("price", price_of(body.get("price")));
    rules.finish()?;
    let (Some(title), Some(price)) = (title, price) else {
        return Err(ApiError::internal(anyhow::anyhow!(
            "validated fields missing"
        )));
    };
    let id = path_id(&id)?;
    // A reservation may land between our read and our write: the version check catches it, and
    // we look again.
    for _ in 0..5 {
        let ticket = match state.tickets.get(id).await {
            Ok(ticket) => ticket,
            Err(StoreError::NotFound { .. }) => return Err(ApiError::NotFound),
            Err(e) => return Err(ApiError::internal(e)),
        };
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
        match state.tickets.update(&edited).await {
            Ok(updated) => {
                state
                    .updated
                    .publish(&updated_event(&updated))
                    .await
                    .map_err(ApiError::internal)?;
                return Ok(Json(updated.into()));
            }
            Err(StoreError::VersionConflict { .. }) => continue,
            Err(e) => return Err(ApiError::internal(e)),
        }
    }
    Err(ApiError::internal(anyhow::anyhow!(
        "ticket {id} kept changing during the update"
    )))
}
