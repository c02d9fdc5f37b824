use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use ticketing_common::validate::is_valid_email;
use ticketing_common::{ApiError, JsonBody, Validation};

use super::{UserJson, email_of, with_cookie};
use crate::password;
use crate::startup::AuthState;

/// `POST /api/users/signin {email, password}`: 200 `{id, email}` and the session cookie; 400
/// `Invalid credentials` for an unknown email and a wrong password alike.
#[tracing::instrument(name = "signin", skip_all)]
pub async fn signin(State(state): State<AuthState>, body: JsonBody) -> Result<Response, ApiError> {
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
            .filter(|p| !p.trim().is_empty())
            .map(str::to_owned)
            .ok_or_else(|| "You must supply a password".to_owned()),
    );
    rules.finish()?;
    let (Some(email), Some(password)) = (email, password) else {
        return Err(ApiError::internal(anyhow::anyhow!(
            "validated fields missing"
        )));
    };

    let user = state
        .users
        .find_by_email(&email)
        .await
        .map_err(ApiError::internal)?;
    let matches =
        password::verify(password, user.as_ref().map(|u| u.password_hash.clone())).await?;
    let Some(user) = user.filter(|_| matches) else {
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
