use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::json;

use crate::helpers::{JWT_KEY, session_cookie, spawn_app};

/// Collects everything the service logs.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn no_password_token_or_key_reaches_the_log() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .try_init()
        .expect("this test installs the only subscriber of its process");
    let app = spawn_app().await;
    let password = "Correct-Horse-Battery-Staple";
    let response = app
        .post_signup(&json!({"email": "secret@test.com", "password": password}))
        .await;
    let cookie = session_cookie(&response).unwrap();
    app.post_signin(&json!({"email": "secret@test.com", "password": password}))
        .await;
    app.post_signin(&json!({"email": "secret@test.com", "password": "Wrong-Horse-Battery"}))
        .await;
    app.post_signup(&json!({"email": "bad", "password": "Short-Or-Not"}))
        .await;
    let token = ticketing_common::session::token_from_cookie(
        cookie
            .split(';')
            .next()
            .unwrap()
            .trim_start_matches("session="),
    )
    .unwrap();

    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(log.contains("user signed up"), "the log is captured: {log}");
    for secret in [
        password,
        "Wrong-Horse-Battery",
        "Short-Or-Not",
        JWT_KEY,
        token.as_str(),
    ] {
        assert!(!log.contains(secret), "{secret:?} was logged");
    }
}
