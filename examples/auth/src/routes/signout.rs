use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use super::with_cookie;
use crate::startup::AuthState;

/// `POST /api/users/signout`: 200 `{}` and a cookie that clears the session.
#[utoipa::path(
    post, path = "/api/users/signout", tag = "users",
    responses(
        (status = 200, description = "Signed out: the cookie is cleared; the body is `{}`", body = Object),
        ticketing_common::error::EdgeErrors,
    )
)]
pub async fn signout(State(state): State<AuthState>) -> Response {
    with_cookie(
        StatusCode::OK,
        state.keys.cleared_cookie().to_string(),
        serde_json::json!({}),
    )
}
