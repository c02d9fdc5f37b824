use ticketing_common::SessionKeys;

use crate::helpers::{JWT_KEY, spawn_app};

#[tokio::test]
async fn current_user_shows_the_signed_in_user() {
    let app = spawn_app().await;
    let cookie = app.signup("test@test.com", "password").await;
    let response = app.get_current_user(Some(&cookie)).await;
    assert_eq!(response.code(), 200);
    let body: serde_json::Value = response.json();
    let user = &body["currentUser"];
    assert_eq!(user["email"], "test@test.com");
    assert_eq!(user["id"].as_str().unwrap().len(), 24);
    let (iat, exp) = (user["iat"].as_i64().unwrap(), user["exp"].as_i64().unwrap());
    assert!(exp > iat, "tokens expire");
}

#[tokio::test]
async fn current_user_is_null_when_not_signed_in() {
    let app = spawn_app().await;
    let body: serde_json::Value = app.get_current_user(None).await.json();
    assert_eq!(body, serde_json::json!({"currentUser": null}));
}

#[tokio::test]
async fn a_bearer_token_works_like_the_cookie() {
    let app = spawn_app().await;
    app.signup("test@test.com", "password").await;
    let keys = SessionKeys::new(JWT_KEY, std::time::Duration::from_secs(60), false).unwrap();
    let (token, _) = keys
        .issue(ticketing_core::Id::new(), "bearer@test.com")
        .unwrap();
    let body: serde_json::Value = app
        .send(
            app.http()
                .get(format!("{}/api/users/currentuser", app.address))
                .bearer_auth(token),
        )
        .await
        .json();
    assert_eq!(body["currentUser"]["email"], "bearer@test.com");
}

#[tokio::test(start_paused = true)]
async fn expired_garbage_and_foreign_sessions_mean_not_signed_in() {
    let app = spawn_app().await;
    let expired = SessionKeys::new(JWT_KEY, std::time::Duration::ZERO, false).unwrap();
    let (token, _) = expired
        .issue(ticketing_core::Id::new(), "old@test.com")
        .unwrap();
    // Past the 5 s leeway, on the service's clock: no real sleep.
    tokio::time::advance(std::time::Duration::from_secs(6)).await;
    let foreign = SessionKeys::new(
        "someone-else-with-a-key-of-32-bytes",
        std::time::Duration::from_secs(60),
        false,
    )
    .unwrap();
    let (foreign_token, _) = foreign
        .issue(ticketing_core::Id::new(), "evil@test.com")
        .unwrap();
    for cookie in [
        format!("session={}", expired.cookie(&token).value()),
        format!("session={}", foreign.cookie(&foreign_token).value()),
        "session=garbage".to_owned(),
        "session=".to_owned(),
    ] {
        let body: serde_json::Value = app.get_current_user(Some(&cookie)).await.json();
        assert_eq!(body, serde_json::json!({"currentUser": null}), "{cookie}");
    }
}
