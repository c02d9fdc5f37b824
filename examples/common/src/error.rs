//! The API's error type and JSON error format: `{"errors":[{"message": "...", "field": "..."}]}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use ticketing_core::StoreError;
use ticketing_core::ticketing::reservation::TransitionError;
use ticketing_core::ticketing::store::ReservationError;

/// The `Retry-After` of a 503 for an unreachable database, in seconds.
pub const UNAVAILABLE_RETRY_AFTER: u64 = 2;

/// One entry of an error body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ErrorEntry {
    /// What went wrong, for people.
    pub message: String,
    /// The request field at fault (validation errors only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// The body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// One entry per failed rule.
    pub errors: Vec<ErrorEntry>,
}

/// What the edge answers any request, documented on every operation once (as
/// `responses(..., EdgeErrors)`): 408 past the request timeout.
#[derive(utoipa::IntoResponses)]
pub enum EdgeErrors {
    /// 408.
    #[response(status = 408, description = "The request took too long")]
    Timeout(ErrorBody),
}

/// What the edge answers any request with a JSON body, documented on every such operation once
/// (as `responses(..., BodyErrors)`): 408 past the request timeout, 413 over 1 MiB, 415 for a
/// body that is not JSON.
#[derive(utoipa::IntoResponses)]
pub enum BodyErrors {
    /// 408.
    #[response(status = 408, description = "The request took too long")]
    Timeout(ErrorBody),
    /// 413.
    #[response(status = 413, description = "The body is over 1 MiB")]
    TooLarge(ErrorBody),
    /// 415.
    #[response(status = 415, description = "The body is not JSON")]
    NotJson(ErrorBody),
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
    /// 409: a concurrent request changed the record first (its version check failed).
    #[error("conflict: {0}")]
    Conflict(String),
    /// 408: the request's body, or the whole request, took longer than allowed.
    #[error("request timed out")]
    RequestTimeout,
    /// 413: the body is larger than the limit.
    #[error("request body too large")]
    PayloadTooLarge,
    /// 415: a body whose content type is not JSON.
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// 429 with `Retry-After`: too many failed attempts.
    #[error("too many requests")]
    TooManyRequests {
        /// Seconds until the next attempt may succeed.
        retry_after: u64,
    },
    /// 503 with `Retry-After`: the service is at capacity for this kind of request.
    #[error("service busy")]
    Busy {
        /// Seconds after which to try again.
        retry_after: u64,
    },
    /// 503 with `Retry-After`: a database or broker this request needs cannot be reached now;
    /// the cause goes to the log.
    #[error("unavailable: {0}")]
    Unavailable(#[source] anyhow::Error),
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
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Busy { .. } | ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
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
            ApiError::Conflict(message) => vec![entry(message)],
            ApiError::RequestTimeout => vec![entry("Request timed out")],
            ApiError::PayloadTooLarge => vec![entry("Request body too large")],
            ApiError::UnsupportedMediaType => vec![entry(
                "Content-Type must be application/json (or another JSON type)",
            )],
            ApiError::TooManyRequests { .. } => {
                vec![entry("Too many failed attempts; try again later")]
            }
            ApiError::Busy { .. } => vec![entry("The service is busy; try again shortly")],
            ApiError::Unavailable(_) => vec![entry(
                "The service is temporarily unavailable; try again shortly",
            )],
            ApiError::Internal(_) => vec![entry("Something went wrong")],
        };
        ErrorBody { errors }
    }
}

/// The message of a 409: the request lost a version check to a concurrent one.
pub const CONFLICT_MESSAGE: &str =
    "The record was changed by another request at the same time; reload it and try again";

impl From<StoreError> for ApiError {
    /// The one mapping of store failures to API answers: an unknown record is a 404, a ticket
    /// held by an active order a 400 `Ticket is already reserved`, a forbidden status change a
    /// 400 naming the rule, a lost version check (or a taken key) a 409, a database that
    /// cannot be reached a 503 with `Retry-After`, anything else an opaque 500 with the cause
    /// logged.
    fn from(error: StoreError) -> Self {
        if let Some(rule) = ReservationError::of(&error) {
            return match rule {
                ReservationError::TicketReserved { .. } => {
                    ApiError::bad_request("Ticket is already reserved")
                }
                ReservationError::Transition(TransitionError::CompletedOrderCannotBeCancelled) => {
                    ApiError::bad_request("Cannot cancel a completed order")
                }
                ReservationError::Transition(TransitionError::NotAllowed { from, to }) => {
                    ApiError::bad_request(format!("An order cannot go from {from} to {to}"))
                }
                other => ApiError::bad_request(other.to_string()),
            };
        }
        match error {
            StoreError::NotFound { .. } => ApiError::NotFound,
            StoreError::VersionConflict { .. } | StoreError::AlreadyExists { .. } => {
                ApiError::Conflict(CONFLICT_MESSAGE.to_owned())
            }
            StoreError::Unavailable { .. } => ApiError::Unavailable(error.into()),
            other => ApiError::internal(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            ApiError::Internal(cause) => tracing::error!(error = ?cause, "request failed"),
            ApiError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "request refused: unavailable")
            }
            _ => {}
        }
        let retry_after = match &self {
            ApiError::TooManyRequests { retry_after } | ApiError::Busy { retry_after } => {
                Some(retry_after.max(&1).to_string())
            }
            ApiError::Unavailable(_) => Some(UNAVAILABLE_RETRY_AFTER.to_string()),
            _ => None,
        };
        let mut response = (self.status(), Json(self.body())).into_response();
        if let Some(seconds) = retry_after
            && let Ok(value) = axum::http::HeaderValue::from_str(&seconds)
        {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, value);
        }
        response
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

    /// Two field rules at once: both values, or a 400 listing every rule that failed.
    ///
    /// ```
    /// use ticketing_common::Validation;
    ///
    /// let ok = Validation::both(("title", Ok::<_, String>("t")), ("price", Ok::<_, String>(5)));
    /// assert_eq!(ok.unwrap(), ("t", 5));
    /// let err = Validation::both(("title", Err::<&str, _>("Title is required".into())),
    ///                            ("price", Err::<u8, _>("Price must be greater than 0".into())));
    /// assert_eq!(err.unwrap_err().body().errors.len(), 2);
    /// ```
    pub fn both<A, B>(
        (field_a, a): (&str, Result<A, String>),
        (field_b, b): (&str, Result<B, String>),
    ) -> Result<(A, B), ApiError> {
        match (a, b) {
            (Ok(a), Ok(b)) => Ok((a, b)),
            (a, b) => {
                let mut rules = Validation::new();
                if let Err(message) = a {
                    rules.fail(field_a, message);
                }
                if let Err(message) = b {
                    rules.fail(field_b, message);
                }
                Err(ApiError::Validation(rules.entries))
            }
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

    #[test]
    fn store_errors_map_to_api_answers() {
        use ticketing_core::Id;
        let answer = |e: StoreError| {
            let api = ApiError::from(e);
            (api.status().as_u16(), api.body().errors[0].message.clone())
        };
        assert_eq!(
            answer(StoreError::not_found("ticket", Id::new())),
            (404, "Not Found".into())
        );
        assert_eq!(
            answer(
                ReservationError::TicketReserved {
                    ticket_id: Id::new()
                }
                .into()
            ),
            (400, "Ticket is already reserved".into())
        );
        assert_eq!(
            answer(StoreError::conflict("ticket", Id::new(), 3)),
            (409, CONFLICT_MESSAGE.into())
        );
        assert_eq!(
            answer(TransitionError::CompletedOrderCannotBeCancelled.into()),
            (400, "Cannot cancel a completed order".into())
        );
        assert_eq!(
            answer(StoreError::backend("postgres", "password=hunter2 refused")),
            (500, "Something went wrong".into())
        );
        let unavailable = ApiError::from(StoreError::unavailable("postgres", "refused"));
        assert_eq!(unavailable.status(), StatusCode::SERVICE_UNAVAILABLE);
        let response = unavailable.into_response();
        assert_eq!(
            response.headers()[axum::http::header::RETRY_AFTER],
            UNAVAILABLE_RETRY_AFTER.to_string().as_str()
        );
    }
}
