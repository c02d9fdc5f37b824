use axum::Json;
use serde_json::{Value, json};
use ticketing_common::CurrentUser;

/// `GET /api/users/currentuser`: `{"currentUser": {id, email, iat, exp}}`, or
/// `{"currentUser": null}` when not signed in (or the token is invalid or expired).
#[utoipa::path(
    get, path = "/api/users/currentuser", tag = "users",
    responses(
        (status = 200, description = "The session's user, or null", body = super::CurrentUserResponse),
        (status = 408, description = "The request took too long", body = ticketing_common::error::ErrorBody),
    )
)]
pub async fn current_user(CurrentUser(claims): CurrentUser) -> Json<Value> {
    Json(json!({ "currentUser": claims }))
}
