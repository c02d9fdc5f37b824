use std::collections::HashMap;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderValue;
use axum::http::header::LINK;
use axum::response::{IntoResponse, Response};
use ticketing_common::{ApiError, Validation, path_id};
use ticketing_core::StoreError;

use crate::models::TicketJson;
use crate::startup::TicketsState;

/// Tickets per page when the request names no `limit`.
pub const DEFAULT_PAGE: usize = 100;
/// The largest `limit` accepted.
pub const MAX_PAGE: usize = 1000;

/// `GET /api/tickets[?limit=N][&after=ID]`: the tickets no order holds, newest first, a page of
/// `limit` (default 100, at most 1,000) — still a JSON array, as the original client reads it.
/// A full page announces the next in `Link: <…?limit=N&after=LAST>; rel="next"`. A bad
/// `limit` or an unknown `after` is a 400 on that field.
#[utoipa::path(
    get, path = "/api/tickets", tag = "tickets",
    params(
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Tickets per page (default 100)"),
        ("after" = Option<String>, Query, description = "The last ticket of the previous page"),
    ),
    responses(
        (status = 200, description = "A page of unreserved tickets, newest first; `Link` names the next", body = Vec<TicketJson>),
        (status = 400, description = "A bad limit or cursor", body = ticketing_common::error::ErrorBody),
        ticketing_common::error::EdgeErrors,
    )
)]
pub async fn index(
    State(state): State<TicketsState>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) =
        query.map_err(|_| ApiError::bad_request("The query string could not be read"))?;
    let limit = match query.get("limit") {
        None => Ok(DEFAULT_PAGE),
        Some(text) => text
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| format!("Limit must be a whole number from 1 to {MAX_PAGE}")),
    };
    let after = match query.get("after") {
        None => Ok(None),
        Some(text) => path_id(text)
            .map(Some)
            .map_err(|_| "After must be the id of a listed ticket".to_owned()),
    };
    let (limit, after) = Validation::both(("limit", limit), ("after", after))?;
    let tickets = match state.tickets.list_unreserved_page(after, limit).await {
        Ok(tickets) => tickets,
        Err(StoreError::NotFound { .. }) => {
            return Err(ApiError::field(
                "after",
                "After must be the id of a listed ticket",
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let next = (tickets.len() == limit)
        .then(|| tickets.last().map(|t| t.id))
        .flatten();
    let body: Vec<TicketJson> = tickets.into_iter().map(Into::into).collect();
    let mut response = Json(body).into_response();
    if let Some(last) = next
        && let Ok(link) = HeaderValue::from_str(&format!(
            "</api/tickets?limit={limit}&after={last}>; rel=\"next\""
        ))
    {
        response.headers_mut().insert(LINK, link);
    }
    Ok(response)
}
