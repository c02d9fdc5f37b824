//! Plumbing shared by the reference ticketing services: the API's error type and JSON error
//! format, lenient JSON bodies, sessions (cookie and bearer token), configuration from the
//! environment and flags, telemetry and graceful serving.

pub mod body;
pub mod config;
pub mod edge;
pub mod error;
pub mod health;
pub mod openapi;
#[cfg(feature = "otel")]
pub mod otel;
pub mod server;
pub mod service;
pub mod session;
pub mod telemetry;
pub mod validate;

pub use body::JsonBody;
pub use config::CommonArgs;
pub use error::{ApiError, Validation};
pub use server::Server;
pub use service::{Application, Service};
pub use session::{Claims, CurrentUser, RequireUser, SessionKeys};

/// Parses an id from a path segment: a malformed id is a 404, like an unknown one.
pub fn path_id(segment: &str) -> Result<ticketing_core::Id, ApiError> {
    ticketing_core::Id::parse(segment).map_err(|_| ApiError::NotFound)
}

/// The id of a route like `/api/tickets/{id}`. It never rejects the request: a malformed id
/// (not an id, or not even UTF-8 once percent-decoded) is a 404 in the error format when the
/// handler asks for it with [`PathId::get`], so the handler decides where that guard comes.
#[derive(Debug, Clone, Copy)]
pub struct PathId(Option<ticketing_core::Id>);

impl PathId {
    /// The id; 404 when it was malformed.
    pub fn get(&self) -> Result<ticketing_core::Id, ApiError> {
        self.0.ok_or(ApiError::NotFound)
    }
}

impl std::fmt::Display for PathId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(id) => id.fmt(f),
            None => f.write_str("(malformed)"),
        }
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for PathId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        let segment = axum::extract::Path::<String>::from_request_parts(parts, state).await;
        Ok(PathId(segment.ok().and_then(|axum::extract::Path(s)| {
            ticketing_core::Id::parse(&s).ok()
        })))
    }
}
