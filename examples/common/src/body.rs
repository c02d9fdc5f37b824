//! Request bodies: JSON objects read leniently and validated field by field, so every bad body
//! is a 400 in the API's error format, never a framework's plain-text rejection.

use axum::extract::{FromRequest, Request};
use serde_json::{Map, Value};

use crate::error::ApiError;

/// The largest body accepted: 1 MiB.
pub const BODY_LIMIT: usize = 1 << 20;

/// A request body that is a JSON object (an empty body reads as `{}`). Any content type is
/// accepted; a body that is not JSON, or not an object, is a 400; one over [`BODY_LIMIT`] a 413.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JsonBody(pub Map<String, Value>);

impl JsonBody {
    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }

    /// The value of `key` if it is a string.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(Value::as_str)
    }
}

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::to_bytes(req.into_body(), BODY_LIMIT)
            .await
            .map_err(|e| {
                let too_large = std::error::Error::source(&e)
                    .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
                if too_large {
                    ApiError::PayloadTooLarge
                } else {
                    ApiError::bad_request("Request body could not be read")
                }
            })?;
        parse(&bytes)
    }
}

/// Reads a body: empty → `{}`, an object → its fields, anything else → 400.
pub fn parse(bytes: &[u8]) -> Result<JsonBody, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(JsonBody::default());
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(JsonBody(map)),
        Ok(_) => Err(ApiError::bad_request("Request body must be a JSON object")),
        Err(_) => Err(ApiError::bad_request("Request body must be valid JSON")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_whitespace_bodies_are_empty_objects() {
        assert_eq!(parse(b"").unwrap(), JsonBody::default());
        assert_eq!(parse(b"  \n").unwrap(), JsonBody::default());
    }

    #[test]
    fn non_objects_and_garbage_are_bad_requests() {
        for body in [&b"[1,2]"[..], b"\"text\"", b"42", b"{not json", b"null"] {
            let err = parse(body).unwrap_err();
            assert_eq!(
                err.status(),
                axum::http::StatusCode::BAD_REQUEST,
                "{body:?}"
            );
        }
    }

    #[test]
    fn typed_access() {
        let body = parse(br#"{"title": "x", "price": 5}"#).unwrap();
        assert_eq!(body.str("title"), Some("x"));
        assert_eq!(body.str("price"), None);
        assert!(body.get("price").is_some());
    }
}
