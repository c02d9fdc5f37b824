//! The routes of `/api/users`, one module per action.

mod current_user;
mod signin;
mod signout;
mod signup;

pub use current_user::current_user;
pub use signin::signin;
pub use signout::signout;
pub use signup::signup;

use axum::Json;
use axum::http::StatusCode;
use axum::http::header::SET_COOKIE;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use ticketing_common::JsonBody;
use ticketing_core::Id;

/// A user as the API shows it.
#[derive(Debug, Serialize)]
pub struct UserJson {
    /// Id.
    pub id: Id,
    /// Email.
    pub email: String,
}

/// A JSON response that sets the session cookie.
fn with_cookie(status: StatusCode, cookie: String, body: impl Serialize) -> Response {
    (status, [(SET_COOKIE, cookie)], Json(body)).into_response()
}

/// The trimmed email of a body, if it is a string.
fn email_of(body: &JsonBody) -> Option<String> {
    body.str("email").map(|e| e.trim().to_owned())
}
