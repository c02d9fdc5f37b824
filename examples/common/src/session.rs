//! Sessions: an HS256 JWT (`id`, `email`, `iat`, `exp`) carried in the `session` cookie as
//! base64 of `{"jwt":"<token>"}` (the original system's cookie-session format), or in an
//! `Authorization: Bearer <token>` header. An invalid or expired token means "not signed in".

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use ticketing_core::{Clock, Id};

use crate::error::ApiError;

/// The cookie's name.
pub const COOKIE: &str = "session";

/// What a session token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Claims {
    /// The user's id.
    #[schema(value_type = String, pattern = "^[0-9a-f]{24}$")]
    pub id: Id,
    /// The user's email.
    pub email: String,
    /// Issued at (seconds since the epoch).
    pub iat: i64,
    /// Expires at (seconds since the epoch).
    pub exp: i64,
}

/// Signs and checks session tokens, and shapes the session cookie. Cheap to clone (the
/// extractors take a copy on every request): the keys and validation rules are shared.
#[derive(Clone)]
pub struct SessionKeys {
    signing: Arc<Signing>,
    ttl: Duration,
    secure_cookies: bool,
    clock: Clock,
}

/// The keys and the validation rules, made once.
struct Signing {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

/// Seconds of clock skew tolerated when checking `exp`.
const LEEWAY_SECONDS: i64 = 5;

impl fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionKeys")
            .field("key", &"[redacted]")
            .field("ttl", &self.ttl)
            .field("secure_cookies", &self.secure_cookies)
            .field("clock", &self.clock)
            .finish()
    }
}

/// The shortest `JWT_KEY` accepted, in bytes: HS256 wants a key at least as long as its hash.
pub const MIN_KEY_BYTES: usize = 32;

/// The JWT key is missing or unusable.
#[derive(Debug, thiserror::Error)]
#[error("invalid JWT_KEY: {0}")]
pub struct InvalidKey(String);

impl SessionKeys {
    /// Keys from the shared secret (`JWT_KEY`); tokens live `ttl`; cookies carry `Secure` when
    /// `secure_cookies` (the deployment is served over HTTPS).
    pub fn new(secret: &str, ttl: Duration, secure_cookies: bool) -> Result<Self, InvalidKey> {
        if secret.len() < MIN_KEY_BYTES {
            return Err(InvalidKey(format!(
                "it is {} bytes long; it must be at least {MIN_KEY_BYTES} (a shorter key can be \
                 guessed offline from any session token), e.g. JWT_KEY=$(openssl rand -hex 32)",
                secret.len()
            )));
        }
        let encoding =
            EncodingKey::from_secret(secret.as_bytes()).map_err(|e| InvalidKey(e.to_string()))?;
        let decoding =
            DecodingKey::from_secret(secret.as_bytes()).map_err(|e| InvalidKey(e.to_string()))?;
        let mut validation = Validation::new(Algorithm::HS256);
        // `exp` is checked against our clock in `verify`, not the system's.
        validation.validate_exp = false;
        validation.set_required_spec_claims(&["exp"]);
        Ok(SessionKeys {
            signing: Arc::new(Signing {
                encoding,
                decoding,
                validation,
            }),
            ttl,
            secure_cookies,
            clock: Clock::system(),
        })
    }

    /// The same keys, reading the time (`iat`, `exp` and their check) from `clock`.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// A signed token for this user, valid from now for the session lifetime.
    pub fn issue(&self, id: Id, email: &str) -> Result<(String, Claims), ApiError> {
        let now = self.clock.now().timestamp();
        let claims = Claims {
            id,
            email: email.to_owned(),
            iat: now,
            exp: now + i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX / 2),
        };
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.signing.encoding,
        )
        .map_err(ApiError::internal)?;
        Ok((token, claims))
    }

    /// The claims of a valid, unexpired token signed with this key.
    pub fn verify(&self, token: &str) -> Option<Claims> {
        jsonwebtoken::decode::<Claims>(token, &self.signing.decoding, &self.signing.validation)
            .ok()
            .map(|data| data.claims)
            .filter(|claims| {
                claims.exp.saturating_add(LEEWAY_SECONDS) > self.clock.now().timestamp()
            })
    }

    /// The `session` cookie carrying `token`.
    pub fn cookie(&self, token: &str) -> Cookie<'static> {
        let value = STANDARD.encode(serde_json::json!({ "jwt": token }).to_string());
        Cookie::build((COOKIE, value))
            .path("/")
            .http_only(true)
            .same_site(SameSite::Lax)
            .secure(self.secure_cookies)
            .build()
    }

    /// A cookie that clears the session.
    pub fn cleared_cookie(&self) -> Cookie<'static> {
        let mut cookie = Cookie::build((COOKIE, ""))
            .path("/")
            .http_only(true)
            .same_site(SameSite::Lax)
            .secure(self.secure_cookies)
            .build();
        cookie.make_removal();
        cookie
    }

    /// The session's claims from the request: a bearer token first, then the cookie.
    pub fn claims_from(&self, parts: &Parts) -> Option<Claims> {
        let bearer = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            });
        if let Some(token) = bearer {
            return self.verify(token.trim());
        }
        let jar = CookieJar::from_headers(&parts.headers);
        let token = token_from_cookie(jar.get(COOKIE)?.value())?;
        self.verify(&token)
    }
}

/// The JWT inside a `session` cookie value.
pub fn token_from_cookie(value: &str) -> Option<String> {
    let json = STANDARD.decode(value.trim()).ok()?;
    let session: serde_json::Value = serde_json::from_slice(&json).ok()?;
    session.get("jwt")?.as_str().map(str::to_owned)
}

/// The signed-in user, if any. Never rejects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentUser(pub Option<Claims>);

impl<S> FromRequestParts<S> for CurrentUser
where
    SessionKeys: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Ok(CurrentUser(SessionKeys::from_ref(state).claims_from(parts)))
    }
}

/// The signed-in user; a 401 `Not authorized` otherwise. Put it first among a handler's
/// extractors: being signed in is checked before anything else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequireUser(pub Claims);

impl<S> FromRequestParts<S> for RequireUser
where
    SessionKeys: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        SessionKeys::from_ref(state)
            .claims_from(parts)
            .map(RequireUser)
            .ok_or(ApiError::NotAuthorized)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> SessionKeys {
        SessionKeys::new(
            "test-key-of-at-least-thirty-two-bytes",
            Duration::from_secs(3600),
            true,
        )
        .unwrap()
    }

    #[test]
    fn a_token_round_trips_through_the_cookie() {
        let keys = keys();
        let id = Id::new();
        let (token, claims) = keys.issue(id, "a@b.co").unwrap();
        assert_eq!(claims.exp - claims.iat, 3600);
        let cookie = keys.cookie(&token);
        let header = cookie.to_string();
        assert!(header.starts_with("session="));
        assert!(
            header.contains("HttpOnly")
                && header.contains("SameSite=Lax")
                && header.contains("Secure")
                && header.contains("Path=/")
        );
        let back = token_from_cookie(cookie.value()).unwrap();
        assert_eq!(keys.verify(&back).unwrap(), claims);
    }

    #[test]
    fn the_cookie_value_is_the_original_format() {
        let cookie = keys().cookie("abc.def.ghi");
        let json = STANDARD.decode(cookie.value()).unwrap();
        assert_eq!(String::from_utf8(json).unwrap(), r#"{"jwt":"abc.def.ghi"}"#);
    }

    #[test]
    fn expired_foreign_and_garbage_tokens_are_rejected() {
        let keys = keys();
        let now = chrono::Utc::now().timestamp();
        let expired = Claims {
            id: Id::new(),
            email: "a@b.co".into(),
            iat: now - 100,
            exp: now - 60,
        };
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &expired,
            &EncodingKey::from_secret(b"test-key").unwrap(),
        )
        .unwrap();
        assert_eq!(keys.verify(&token), None);
        let other = SessionKeys::new(
            "other-key-of-at-least-thirty-two-bytes",
            Duration::from_secs(60),
            false,
        )
        .unwrap();
        let (foreign, _) = other.issue(Id::new(), "a@b.co").unwrap();
        assert_eq!(keys.verify(&foreign), None);
        assert_eq!(keys.verify("garbage"), None);
        assert_eq!(token_from_cookie("%%%"), None);
        assert_eq!(token_from_cookie(&STANDARD.encode("{}")), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_token_expires_on_the_keys_clock() {
        let keys = SessionKeys::new(
            "test-key-of-at-least-thirty-two-bytes",
            Duration::from_secs(60),
            true,
        )
        .unwrap()
        .with_clock(Clock::tokio());
        let (token, claims) = keys.issue(Id::new(), "a@b.co").unwrap();
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(keys.verify(&token), Some(claims), "within the leeway");
        tokio::time::advance(Duration::from_secs(LEEWAY_SECONDS as u64)).await;
        assert_eq!(keys.verify(&token), None, "expired");
    }

    #[test]
    fn an_empty_key_is_refused_and_never_printed() {
        assert!(SessionKeys::new("", Duration::from_secs(1), true).is_err());
        assert!(!format!("{:?}", keys()).contains("test-key"));
    }

    #[test]
    fn the_cleared_cookie_expires_the_session() {
        let header = keys().cleared_cookie().to_string();
        assert!(header.starts_with("session=;"), "{header}");
        assert!(header.contains("Max-Age=0"), "{header}");
    }
}
