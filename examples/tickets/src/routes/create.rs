use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use ticketing_common::{ApiError, JsonBody, RequireUser, Validation};
use ticketing_core::Id;
use ticketing_core::store::Ticket;

use crate::models::{TicketJson, created_event, price_of, title_of};
use crate::startup::TicketsState;

/// `POST /api/tickets {title, price}`: 201 with the ticket at version 0; publishes
/// `ticket:created` once it is stored.
#[tracing::instrument(name = "create_ticket", skip_all, fields(user = %user.id))]
pub async fn create(
    RequireUser(user): RequireUser,
    State(state): State<TicketsState>,
    body: JsonBody,
) -> Result<(StatusCode, Json<TicketJson>), ApiError> {
    let mut rules = Validation::new();
    let title = rules.check("title", title_of(body.get("title")));
    let price = rules.check("price", price_of(body.get("price")));
    rules.finish()?;
    let (Some(title), Some(price)) = (title, price) else {
        return Err(ApiError::internal(anyhow::anyhow!(
            "validated fields missing"
        )));
    };
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
        .await
        .map_err(ApiError::internal)?;
    state
        .created
        .publish(&created_event(&ticket))
        .await
        .map_err(ApiError::internal)?;
    tracing::info!(ticket = %ticket.id, "ticket created");
    Ok((StatusCode::CREATED, Json(ticket.into())))
}
