use std::ops::Deref;

use reqwest::header::SET_COOKIE;
use serde_json::{Value, json};
use ticketing_auth::startup::{Auth, AuthState};
use ticketing_test_app as kit;

pub use kit::{Answer, JWT_KEY, assert_error, assert_field_error, error_messages};

pub struct TestApp {
    pub http: kit::TestApp,
}

impl Deref for TestApp {
    type Target = kit::TestApp;
    fn deref(&self) -> &kit::TestApp {
        &self.http
    }
}

/// The auth service on a random port, with in-memory users and its time on tokio's clock.
pub async fn spawn_app() -> TestApp {
    spawn_app_on(&kit::Memory::new().await.database).await
}

/// The auth service on a random port over `database` (one replica of several, when several
/// are spawned on one database).
pub async fn spawn_app_on(database: &ticketing_store::Database) -> TestApp {
    let state = AuthState::new(
        database,
        kit::keys(),
        ticketing_auth::guard::Guards::default(),
    );
    TestApp {
        http: kit::spawn::<Auth>(state).await,
    }
}

/// The `session=...` pair of a response's Set-Cookie, if any.
pub fn session_cookie(response: &Answer) -> Option<String> {
    response
        .headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("session="))
        .map(str::to_owned)
}

/// The cookie a browser would send back.
pub fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap_or_default().to_owned()
}

impl TestApp {
    pub async fn post_json(&self, path: &str, body: &Value, cookie: Option<&str>) -> Answer {
        self.http.post(path, cookie, body).await
    }

    pub async fn post_signup(&self, body: &Value) -> Answer {
        self.post_json("/api/users/signup", body, None).await
    }

    pub async fn post_signin(&self, body: &Value) -> Answer {
        self.post_json("/api/users/signin", body, None).await
    }

    pub async fn post_signout(&self, cookie: Option<&str>) -> Answer {
        self.post_json("/api/users/signout", &json!({}), cookie)
            .await
    }

    pub async fn get_current_user(&self, cookie: Option<&str>) -> Answer {
        self.http.get("/api/users/currentuser", cookie).await
    }

    /// Signs up and returns the cookie to send back.
    pub async fn signup(&self, email: &str, password: &str) -> String {
        let response = self
            .post_signup(&json!({"email": email, "password": password}))
            .await;
        assert_eq!(response.code(), 201);
        cookie_pair(&session_cookie(&response).expect("cookie"))
    }
}
