//! Plumbing shared by the reference ticketing services: the API's error type and JSON error
//! format, lenient JSON bodies, sessions (cookie and bearer token), configuration from the
//! environment and flags, telemetry and graceful serving.

pub mod body;
pub mod config;
pub mod error;
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
