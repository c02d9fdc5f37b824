use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use ticketing_common::{ApiError, JsonBody};
use ticketing_core::ticketing::store::User;
use ticketing_core::{Id, StoreError};

use super::{Credentials, UserJson, with_cookie};
use crate::password;
use crate::startup::AuthState;

/// `POST /api/users/signup {email, password}`: 201 `{id, email}` and the session cookie.
#[utoipa::path(
    post, path = "/api/users/signup", tag = "users",
    request_body(content = super::CredentialsRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Signed up and in: the `session` cookie is set", body = UserJson),
        (status = 400, description = "A field is invalid, or the email is in use", body = ticketing_common::error::ErrorBody),
        ticketing_common::error::BodyErrors,
        (status = 503, description = "Password hashing is saturated; see `Retry-After`", body = ticketing_common::error::ErrorBody),
    )
)]
#[tracing::instrument(name = "signup", skip_all)]
pub async fn signup(State(state): State<AuthState>, body: JsonBody) -> Result<Response, ApiError> {
    let Credentials { email, password } = Credentials::for_sign_up(&body)?;
    if state.users.find_by_email(&email).await?.is_some() {
        return Err(ApiError::bad_request("Email in use"));
    }
    let password_hash = password::hash(&state.guards.hashing, password).await?;
    let user = match state
        .users
        .create(User {
            id: Id::new(),
            email,
            password_hash,
        })
        .await
    {
        Ok(user) => user,
        // Another sign-up with this email won the race.
        Err(StoreError::AlreadyExists { .. }) => return Err(ApiError::bad_request("Email in use")),
        Err(e) => return Err(e.into()),
    };
    let (token, _) = state.keys.issue(user.id, &user.email)?;
    tracing::info!(user = %user.id, "user signed up");
    Ok(with_cookie(
        StatusCode::CREATED,
        state.keys.cookie(&token).to_string(),
        UserJson {
            id: user.id,
            email: user.email,
        },
    ))
}
