use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use ticketing_common::validate::is_valid_email;
use ticketing_common::{ApiError, JsonBody, Validation};
use ticketing_core::store::User;
use ticketing_core::{Id, StoreError};

use super::{UserJson, email_of, with_cookie};
use crate::password;
use crate::startup::AuthState;

/// `POST /api/users/signup {email, password}`: 201 `{id, email}` and the session cookie.
#[tracing::instrument(name = "signup", skip_all)]
pub async fn signup(State(state): State<AuthState>, body: JsonBody) -> Result<Response, ApiError> {
    let mut rules = Validation::new();
    let email = rules.check(
        "email",
        email_of(&body)
            .filter(|e| is_valid_email(e))
            .ok_or_else(|| "Email must be valid".to_owned()),
    );
    let password = rules.check(
        "password",
        body.str("password")
            .filter(|p| (8..=128).contains(&p.trim().chars().count()) && p.chars().count() <= 128)
            .map(str::to_owned)
            .ok_or_else(|| "Password must be between 8 and 128 characters".to_owned()),
    );
    rules.finish()?;
    let (Some(email), Some(password)) = (email, password) else {
        return Err(ApiError::internal(anyhow::anyhow!(
            "validated fields missing"
        )));
    };

    if state
        .users
        .find_by_email(&email)
        .await
        .map_err(ApiError::internal)?
        .is_some()
    {
        return Err(ApiError::bad_request("Email in use"));
    }
    let password_hash = password::hash(password).await?;
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
        Err(e) => return Err(ApiError::internal(e)),
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
