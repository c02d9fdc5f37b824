use serde_json::json;

use crate::helpers::{
    assert_error, assert_field_error, error_messages, session_cookie, spawn_app, spawn_app_on,
};

#[tokio::test]
async fn signin_with_an_unknown_email_is_invalid_credentials() {
    let app = spawn_app().await;
    let response = app
        .post_signin(&json!({"email": "test@test.com", "password": "password"}))
        .await;
    assert_error(&response, 400, "Invalid credentials");
}

#[tokio::test]
async fn signin_with_a_wrong_password_is_invalid_credentials() {
    let app = spawn_app().await;
    app.signup("test@test.com", "password").await;
    let response = app
        .post_signin(&json!({"email": "test@test.com", "password": "aslkdfjalskdfj"}))
        .await;
    assert_error(&response, 400, "Invalid credentials");
}

#[tokio::test]
async fn signin_with_valid_credentials_sets_a_cookie() {
    let app = spawn_app().await;
    app.signup("test@test.com", "password").await;
    let response = app
        .post_signin(&json!({"email": "TEST@test.com ", "password": "password"}))
        .await;
    assert_eq!(response.code(), 200);
    assert!(session_cookie(&response).is_some());
    let body: serde_json::Value = response.json();
    assert_eq!(body["email"], "test@test.com");
}

#[tokio::test]
async fn signin_validates_email_and_password_presence() {
    let app = spawn_app().await;
    let response = app.post_signin(&json!({"email": "not-an-email"})).await;
    assert_eq!(response.code(), 400);
    assert_eq!(
        error_messages(&response),
        vec![
            ("Email must be valid".into(), Some("email".into())),
            ("You must supply a password".into(), Some("password".into()))
        ]
    );
    let response = app
        .post_signin(&json!({"email": "a@test.com", "password": "   "}))
        .await;
    assert_field_error(&response, "You must supply a password", "password");
}

#[tokio::test]
async fn repeated_failures_lock_the_account_with_429_and_a_success_never_does() {
    let app = spawn_app().await;
    app.signup("victim@test.com", "password").await;
    // Successes do not count: sign in far more often than the allowance of failures.
    for _ in 0..8 {
        let response = app
            .post_signin(&json!({"email": "victim@test.com", "password": "password"}))
            .await;
        assert_eq!(response.code(), 200);
    }
    // Five failures are allowed (the default); the sixth tips the account over.
    for attempt in 1..=6 {
        let response = app
            .post_signin(&json!({"email": "victim@test.com", "password": "wrong-guess"}))
            .await;
        assert_eq!(response.code(), 400, "failure {attempt}");
    }
    // Now even the right password is refused, before it is checked.
    let response = app
        .post_signin(&json!({"email": "victim@test.com", "password": "password"}))
        .await;
    assert_eq!(response.code(), 429);
    let retry_after: u64 = response.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=300).contains(&retry_after), "{retry_after}");
    assert_eq!(
        error_messages(&response),
        vec![("Too many failed attempts; try again later".into(), None)]
    );
    // Another account from the same client is not locked (the address allows 50).
    app.signup("other@test.com", "password").await;
    let response = app
        .post_signin(&json!({"email": "other@test.com", "password": "password"}))
        .await;
    assert_eq!(response.code(), 200);
}

/// Two replicas of the service on one PostgreSQL database: the failures made through one count
/// at the other, so N replicas do not give an attacker N allowances.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_through_one_replica_are_refused_by_another() {
    let settings = ticketing_store::StoreSettings::Postgres {
        url: ticketing_test_live::fresh_pg_database("auth").await,
        schema: None,
        max_connections: None,
        min_connections: None,
        timeout_seconds: None,
    };
    let replica = || async {
        let database = settings
            .open_ticketing("auth")
            .await
            .expect("PostgreSQL must be running (scripts/test starts it)");
        spawn_app_on(&database).await
    };
    let (one, two) = (replica().await, replica().await);
    one.signup("victim@test.com", "password").await;
    // Six failures, three through each: past the allowance of five (the default) in all.
    for (attempt, replica) in [&one, &two, &one, &two, &one, &two].into_iter().enumerate() {
        let response = replica
            .post_signin(&json!({"email": "victim@test.com", "password": "wrong-guess"}))
            .await;
        assert_eq!(response.code(), 400, "failure {}", attempt + 1);
    }
    for replica in [&one, &two] {
        let response = replica
            .post_signin(&json!({"email": "victim@test.com", "password": "password"}))
            .await;
        assert_eq!(response.code(), 429, "{response}");
    }
}
