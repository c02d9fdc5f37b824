use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use super::with_cookie;
use crate::startup::AuthState;

/// `POST /api/users/signout`: 200 `{}` and a cookie that clears the session.
pub async fn signout(State(state): State<AuthState>) -> Response {
    with_cookie(
        StatusCode::OK,
        state.keys.cleared_cookie().to_string(),
        serde_json::json!({}),
    )
}
