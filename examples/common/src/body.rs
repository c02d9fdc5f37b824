//! Request bodies: JSON objects read leniently and validated field by field, so every bad body
//! is a 400 in the API's error format, never a framework's plain-text rejection.

use axum::extract::{FromRequest, Request};
use serde_json::{Map, Value};

use crate::error::ApiError;

/// The largest body accepted: 1 MiB.
pub const BODY_LIMIT: usize = 1 << 20;

/// How long reading a body may take when the server set no [`BodyTimeout`](crate::server::BodyTimeout).
pub const DEFAULT_BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A request body that is a JSON object (an empty body reads as `{}`, whatever its content
/// type). A non-empty body must say it is JSON (`application/json`, with or without
/// parameters, or a `+json` type), else 415; a body that is not JSON, or not an object, is a
/// 400; one over [`BODY_LIMIT`] a 413; one not received within the body timeout a 408.
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
        let json = is_json(req.headers().get(axum::http::header::CONTENT_TYPE));
        let timeout = req
            .extensions()
            .get::<crate::server::BodyTimeout>()
            .map_or(DEFAULT_BODY_TIMEOUT, |t| t.0);
        let read = axum::body::to_bytes(req.into_body(), BODY_LIMIT);
        let bytes = tokio::time::timeout(timeout, read)
            .await
            .map_err(|_| ApiError::RequestTimeout)?
            .map_err(|e| {
                let too_large = std::error::Error::source(&e)
                    .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
                if too_large {
                    ApiError::PayloadTooLarge
                } else {
                    ApiError::bad_request("Request body could not be read")
                }
            })?;
        if !json && !bytes.is_empty() {
            return Err(ApiError::UnsupportedMediaType);
        }
        parse(&bytes)
    }
}

/// Whether a `Content-Type` says JSON: `application/json` or `application/<x>+json`, any
/// parameters, any case.
pub fn is_json(content_type: Option<&axum::http::HeaderValue>) -> bool {
    let Some(Ok(value)) = content_type.map(|v| v.to_str()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    kind.eq_ignore_ascii_case("application")
        && (subtype.eq_ignore_ascii_case("json")
            || subtype.len() > 5 && subtype[subtype.len() - 5..].eq_ignore_ascii_case("+json"))
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

    proptest::proptest! {
        #[test]
        fn any_bytes_are_an_object_or_a_400_never_a_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
            match parse(&bytes) {
                Ok(_) => {}
                Err(error) => proptest::prop_assert_eq!(error.status(), axum::http::StatusCode::BAD_REQUEST),
            }
        }

        #[test]
        fn any_content_type_is_judged_without_panicking(value in "[ -~]{0,60}") {
            if let Ok(header) = axum::http::HeaderValue::from_str(&value) {
                let _ = is_json(Some(&header));
            }
        }
    }

    #[test]
    fn json_content_types_are_recognised() {
        let json = |v: &str| is_json(Some(&axum::http::HeaderValue::from_str(v).unwrap()));
        for yes in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
            "application/merge-patch+json",
            "application/vnd.api+json;v=1",
        ] {
            assert!(json(yes), "{yes}");
        }
        for no in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/jsonp",
            "application/+json",
            "text/json",
            "json",
            "",
        ] {
            assert!(!json(no), "{no}");
        }
        assert!(!is_json(None));
    }

    #[test]
    fn typed_access() {
        let body = parse(br#"{"title": "x", "price": 5}"#).unwrap();
        assert_eq!(body.str("title"), Some("x"));
        assert_eq!(body.str("price"), None);
        assert!(body.get("price").is_some());
    }
}
