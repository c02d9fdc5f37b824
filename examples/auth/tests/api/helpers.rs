use std::sync::Arc;

use reqwest::header::{COOKIE, SET_COOKIE};
use serde_json::{Value, json};
use ticketing_auth::startup::{Application, AuthState};
use ticketing_common::CommonArgs;
use ticketing_store::memory::InMemoryUserStore;

pub const JWT_KEY: &str = "test-jwt-key";

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
}

/// The auth service on a random port, with in-memory users.
pub async fn spawn_app() -> TestApp {
    let common = CommonArgs::for_tests(JWT_KEY);
    let state = AuthState {
        users: Arc::new(InMemoryUserStore::new()),
        keys: common.session_keys(false).unwrap(),
    };
    let app = Application::build_with(&common, state)
        .await
        .expect("build");
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        client: reqwest::Client::new(),
    }
}

/// The `session=...` pair of a response's Set-Cookie, if any.
pub fn session_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
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
    pub async fn post(&self, path: &str, body: &Value, cookie: Option<&str>) -> reqwest::Response {
        let mut request = self
            .client
            .post(format!("{}{path}", self.address))
            .json(body);
        if let Some(cookie) = cookie {
            request = request.header(COOKIE, cookie);
        }
        request.send().await.expect("request")
    }

    pub async fn post_signup(&self, body: &Value) -> reqwest::Response {
        self.post("/api/users/signup", body, None).await
    }

    pub async fn post_signin(&self, body: &Value) -> reqwest::Response {
        self.post("/api/users/signin", body, None).await
    }

    pub async fn post_signout(&self, cookie: Option<&str>) -> reqwest::Response {
        self.post("/api/users/signout", &json!({}), cookie).await
    }

    pub async fn get_current_user(&self, cookie: Option<&str>) -> reqwest::Response {
        let mut request = self
            .client
            .get(format!("{}/api/users/currentuser", self.address));
        if let Some(cookie) = cookie {
            request = request.header(COOKIE, cookie);
        }
        request.send().await.expect("request")
    }

    /// Signs up and returns the cookie to send back.
    pub async fn signup(&self, email: &str, password: &str) -> String {
        let response = self
            .post_signup(&json!({"email": email, "password": password}))
            .await;
        assert_eq!(response.status(), 201);
        cookie_pair(&session_cookie(&response).expect("cookie"))
    }
}

/// The messages of an error body, in order.
pub async fn error_messages(response: reqwest::Response) -> Vec<(String, Option<String>)> {
    let body: Value = response.json().await.expect("json body");
    body["errors"]
        .as_array()
        .expect("errors array")
        .iter()
        .map(|e| {
            (
                e["message"].as_str().unwrap().to_owned(),
                e["field"].as_str().map(str::to_owned),
            )
        })
        .collect()
}
