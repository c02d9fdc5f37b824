use crate::helpers::{session_cookie, spawn_app};

#[tokio::test]
async fn signout_clears_the_cookie() {
    let app = spawn_app().await;
    let cookie = app.signup("test@test.com", "password").await;
    let response = app.post_signout(Some(&cookie)).await;
    assert_eq!(response.code(), 200);
    let cleared = session_cookie(&response).expect("Set-Cookie");
    assert!(cleared.starts_with("session=;"), "{cleared}");
    assert!(
        cleared.contains("Max-Age=0") || cleared.contains("Expires=Thu, 01 Jan 1970"),
        "{cleared}"
    );
    let body: serde_json::Value = response.json();
    assert_eq!(body, serde_json::json!({}));
}

#[tokio::test]
async fn signout_without_a_session_is_fine() {
    let app = spawn_app().await;
    assert_eq!(app.post_signout(None).await.code(), 200);
}
