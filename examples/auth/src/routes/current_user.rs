use axum::Json;
use serde_json::{Value, json};
use ticketing_common::CurrentUser;

/// `GET /api/users/currentuser`: `{"currentUser": {id, email, iat, exp}}`, or
/// `{"currentUser": null}` when not signed in (or the token is invalid or expired).
#[utoipa::path(
    get, path = "/api/users/currentuser", tag = "users",
    responses(
        (status = 200, description = "The session's user, or null", body = super::CurrentUserResponse),
        ticketing_common::error::EdgeErrors,
    )
)]
pub async fn current_user(CurrentUser(claims): CurrentUser) -> Json<Value> {
    Json(json!({ "currentUser": claims }))
}
