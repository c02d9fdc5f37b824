use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use ticketing_common::{ApiError, JsonBody};

use super::{Credentials, UserJson, with_cookie};
use crate::guard::ClientAddress;
use crate::password;
use crate::startup::AuthState;

/// `POST /api/users/signin {email, password}`: 200 `{id, email}` and the session cookie; 400
/// `Invalid credentials` for an unknown email and a wrong password alike; 429 with
/// `Retry-After` once the account or the client address has failed too often (checked before
/// the password, so guessing stops too).
#[utoipa::path(
    post, path = "/api/users/signin", tag = "users",
    request_body(content = super::CredentialsRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Signed in: the `session` cookie is set", body = UserJson),
        (status = 400, description = "A field is invalid, or the credentials are", body = ticketing_common::error::ErrorBody),
        ticketing_common::error::BodyErrors,
        (status = 429, description = "Too many failures; see `Retry-After`", body = ticketing_common::error::ErrorBody),
        (status = 503, description = "Password hashing is saturated; see `Retry-After`", body = ticketing_common::error::ErrorBody),
    )
)]
#[tracing::instrument(name = "signin", skip_all)]
pub async fn signin(
    State(state): State<AuthState>,
    ClientAddress(address): ClientAddress,
    body: JsonBody,
) -> Result<Response, ApiError> {
    let Credentials { email, password } = Credentials::for_sign_in(&body)?;
    let attempt = state.guards.signin.attempt(&*state.users, &email, address);
    attempt.check().await?;
    let user = state.users.find_by_email(&email).await?;
    let matches = password::verify(
        &state.guards.hashing,
        password,
        user.as_ref().map(|u| u.password_hash.clone()),
    )
    .await?;
    let Some(user) = user.filter(|_| matches) else {
        attempt.failed().await?;
        return Err(ApiError::bad_request("Invalid credentials"));
    };
    let (token, _) = state.keys.issue(user.id, &user.email)?;
    Ok(with_cookie(
        StatusCode::OK,
        state.keys.cookie(&token).to_string(),
        UserJson {
            id: user.id,
            email: user.email,
        },
    ))
}
