use axum::Json;
use serde_json::{Value, json};
use ticketing_common::CurrentUser;

/// `GET /api/users/currentuser`: `{"currentUser": {id, email, iat, exp}}`, or
/// `{"currentUser": null}` when not signed in (or the token is invalid or expired).
pub async fn current_user(CurrentUser(claims): CurrentUser) -> Json<Value> {
    Json(json!({ "currentUser": claims }))
}
