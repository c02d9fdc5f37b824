//! The API's error type and JSON error format: `{"errors":[{"message": "...", "field": "..."}]}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// One entry of an error body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorEntry {
    /// What went wrong, for people.
    pub message: String,
    /// The request field at fault (validation errors only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// The body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorBody {
    /// One entry per failed rule.
    pub errors: Vec<ErrorEntry>,
}

/// What a handler can fail with. Every variant renders in the API's error format; an
/// internal error renders as an opaque 500 and logs its cause.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400 with one entry per failed field rule.
    #[error("invalid request: {0:?}")]
    Validation(Vec<ErrorEntry>),
    /// 400 for a rule of the domain (`Ticket is already reserved`).
    #[error("{0}")]
    BadRequest(String),
    /// 401 `Not authorized`: not signed in, or not the owner.
    #[error("not authorized")]
    NotAuthorized,
    /// 404 `Not Found`: unknown route, malformed or unknown id.
    #[error("not found")]
    NotFound,
    /// 413: the body is larger than the limit.
    #[error("request body too large")]
    PayloadTooLarge,
    /// 500 `Something went wrong`; the cause goes to the log only.
    #[error("internal error: {0}")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    /// A single validation failure on `field`.
    pub fn field(field: &str, message: &str) -> Self {
        ApiError::Validation(vec![ErrorEntry {
            message: message.to_owned(),
            field: Some(field.to_owned()),
        }])
    }

    /// A domain-rule failure.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::BadRequest(message.into())
    }

    /// An unexpected failure; the cause is logged, not shown.
    pub fn internal(error: impl Into<anyhow::Error>) -> Self {
        ApiError::Internal(error.into())
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Validation(_) | ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotAuthorized => StatusCode::UNAUTHORIZED,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The body.
    pub fn body(&self) -> ErrorBody {
        let entry = |message: &str| ErrorEntry {
            message: message.to_owned(),
            field: None,
        };
        let errors = match self {
            ApiError::Validation(entries) => entries.clone(),
            ApiError::BadRequest(message) => vec![entry(message)],
            ApiError::NotAuthorized => vec![entry("Not authorized")],
            ApiError::NotFound => vec![entry("Not Found")],
            ApiError::PayloadTooLarge => vec![entry("Request body too large")],
            ApiError::Internal(_) => vec![entry("Something went wrong")],
        };
        ErrorBody { errors }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(cause) = &self {
            tracing::error!(error = ?cause, "request failed");
        }
        (self.status(), Json(self.body())).into_response()
    }
}

/// Collects field errors, so a request reports every failed rule at once.
#[derive(Debug, Default)]
pub struct Validation {
    entries: Vec<ErrorEntry>,
}

impl Validation {
    /// No errors yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a failed rule on `field`.
    pub fn fail(&mut self, field: &str, message: impl Into<String>) {
        self.entries.push(ErrorEntry {
            message: message.into(),
            field: Some(field.to_owned()),
        });
    }

    /// Keeps the value of a passed rule, or records the failure.
    pub fn check<T>(&mut self, field: &str, result: Result<T, String>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(message) => {
                self.fail(field, message);
                None
            }
        }
    }

    /// `Err` with every failure, if there was any.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.entries.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.entries))
        }
    }
}

/// The handler for unknown routes and methods: 404 in the error format.
pub async fn not_found() -> ApiError {
    ApiError::NotFound
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_match_the_original_format() {
        let json = |e: ApiError| serde_json::to_value(e.body()).unwrap();
        assert_eq!(
            json(ApiError::NotFound),
            serde_json::json!({"errors": [{"message": "Not Found"}]})
        );
        assert_eq!(
            json(ApiError::field("email", "Email must be valid")),
            serde_json::json!({"errors": [{"message": "Email must be valid", "field": "email"}]})
        );
        assert_eq!(
            json(ApiError::internal(anyhow::anyhow!(
                "db down: password=hunter2"
            ))),
            serde_json::json!({"errors": [{"message": "Something went wrong"}]})
        );
        assert_eq!(ApiError::NotAuthorized.status(), StatusCode::UNAUTHORIZED);
    }
}
