//! The routes of `/api/users`, one module per action.

pub(crate) mod current_user;
pub(crate) mod signin;
pub(crate) mod signout;
pub(crate) mod signup;

pub use current_user::current_user;
pub use signin::signin;
pub use signout::signout;
pub use signup::signup;

use axum::Json;
use axum::http::StatusCode;
use axum::http::header::SET_COOKIE;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use ticketing_common::validate::is_valid_email;
use ticketing_common::{ApiError, JsonBody, Validation};
use ticketing_core::Id;

/// A user as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = User)]
pub struct UserJson {
    /// Id.
    #[schema(value_type = String, pattern = "^[0-9a-f]{24}$")]
    pub id: Id,
    /// Email.
    pub email: String,
}

/// A JSON response that sets the session cookie.
fn with_cookie(status: StatusCode, cookie: String, body: impl Serialize) -> Response {
    (status, [(SET_COOKIE, cookie)], Json(body)).into_response()
}

/// The email rule: a string that, trimmed, is a plausible address. Returns it trimmed.
fn email_of(body: &JsonBody) -> Result<String, String> {
    body.str("email")
        .map(|e| e.trim().to_owned())
        .filter(|e| is_valid_email(e))
        .ok_or_else(|| "Email must be valid".to_owned())
}

/// The new-password rule: a string of 8 to 128 characters (not counting surrounding blanks
/// towards the minimum) without NUL.
fn new_password(value: Option<&serde_json::Value>) -> Result<String, String> {
    let password = value
        .and_then(serde_json::Value::as_str)
        .filter(|p| (8..=128).contains(&p.trim().chars().count()) && p.chars().count() <= 128)
        .ok_or_else(|| "Password must be between 8 and 128 characters".to_owned())?;
    if password.contains('\0') {
        return Err("Password must not contain NUL characters".to_owned());
    }
    Ok(password.to_owned())
}

/// The body of `POST /api/users/signup` and `POST /api/users/signin`.
#[derive(Debug, utoipa::ToSchema)]
pub struct CredentialsRequest {
    /// A valid address, at most 254 bytes.
    #[schema(format = Email, max_length = 254)]
    pub email: String,
    /// 8 to 128 characters, no NUL (sign-up); not blank (sign-in).
    #[schema(min_length = 8, max_length = 128)]
    pub password: String,
}

/// The answer of `GET /api/users/currentuser`.
#[derive(Debug, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CurrentUserResponse {
    /// The session's claims, or null when not signed in.
    pub current_user: Option<ticketing_common::Claims>,
}

/// The email (trimmed) and password of a sign-up or sign-in request.
#[derive(Debug)]
pub struct Credentials {
    /// The email, trimmed.
    pub email: String,
    /// The password.
    pub password: String,
}

impl Credentials {
    /// A sign-up's: a valid email, a password of 8 to 128 characters. Every failed rule is
    /// reported at once.
    pub fn for_sign_up(body: &JsonBody) -> Result<Self, ApiError> {
        Self::checked(body, new_password(body.get("password")))
    }

    /// A sign-in's: a valid email, a password that is not blank and at most 128 characters,
    /// as any password that can be set (nothing longer is hashed).
    pub fn for_sign_in(body: &JsonBody) -> Result<Self, ApiError> {
        let password = body
            .str("password")
            .filter(|p| !p.trim().is_empty() && p.chars().count() <= 128)
            .map(str::to_owned)
            .ok_or_else(|| "You must supply a password".to_owned());
        Self::checked(body, password)
    }

    fn checked(body: &JsonBody, password: Result<String, String>) -> Result<Self, ApiError> {
        let (email, password) =
            Validation::both(("email", email_of(body)), ("password", password))?;
        Ok(Credentials { email, password })
    }
}
