use serde_json::json;

use crate::helpers::{assert_field_error, error_messages, session_cookie, spawn_app};

#[tokio::test]
async fn signup_returns_201_with_the_user() {
    let app = spawn_app().await;
    let response = app
        .post_signup(&json!({"email": "test@test.com", "password": "password"}))
        .await;
    assert_eq!(response.code(), 201);
    let body: serde_json::Value = response.json();
    assert_eq!(body["email"], "test@test.com");
    assert_eq!(body["id"].as_str().unwrap().len(), 24);
    assert!(body.get("password").is_none());
}

#[tokio::test]
async fn signup_sets_the_session_cookie() {
    let app = spawn_app().await;
    let response = app
        .post_signup(&json!({"email": "test@test.com", "password": "password"}))
        .await;
    let cookie = session_cookie(&response).expect("Set-Cookie: session=...");
    assert!(cookie.contains("HttpOnly"));
    assert!(cookie.contains("Path=/"));
    assert!(cookie.contains("SameSite=Lax"));
    assert!(
        !cookie.contains("Secure"),
        "plain-HTTP deployment: {cookie}"
    );
}

#[tokio::test]
async fn signup_with_an_invalid_email_is_a_400_on_the_email_field() {
    let app = spawn_app().await;
    for email in [
        json!("alskdflaskjfd"),
        json!("a@b"),
        json!(42),
        json!(null),
        json!(""),
    ] {
        let response = app
            .post_signup(&json!({"email": email, "password": "password"}))
            .await;
        assert_field_error(&response, "Email must be valid", "email");
    }
}

#[tokio::test]
async fn signup_with_a_password_outside_8_to_128_characters_is_a_400() {
    let app = spawn_app().await;
    for password in [
        json!("p"),
        json!("1234567"),
        json!("x".repeat(129)),
        json!("        "),
        json!(12345678),
    ] {
        let response = app
            .post_signup(&json!({"email": "test@test.com", "password": password}))
            .await;
        assert_field_error(
            &response,
            "Password must be between 8 and 128 characters",
            "password",
        );
    }
    for password in ["12345678".to_owned(), "x".repeat(128)] {
        let email = format!("ok{}@test.com", password.len());
        let response = app
            .post_signup(&json!({"email": email, "password": password}))
            .await;
        assert_eq!(response.code(), 201, "length {}", password.len());
    }
}

#[tokio::test]
async fn signup_without_email_and_password_reports_both_fields() {
    let app = spawn_app().await;
    let response = app.post_signup(&json!({})).await;
    assert_eq!(response.code(), 400);
    let fields: Vec<Option<String>> = error_messages(&response)
        .into_iter()
        .map(|(_, f)| f)
        .collect();
    assert_eq!(fields, vec![Some("email".into()), Some("password".into())]);
}

#[tokio::test]
async fn signup_with_an_email_in_use_is_a_400_ignoring_case_and_spaces() {
    let app = spawn_app().await;
    app.signup("Test@Test.com", "password").await;
    for email in ["Test@Test.com", "test@test.com", "  TEST@test.COM "] {
        let response = app
            .post_signup(&json!({"email": email, "password": "password"}))
            .await;
        assert_eq!(response.code(), 400, "{email}");
        assert_eq!(
            error_messages(&response),
            vec![("Email in use".into(), None)]
        );
    }
}

#[tokio::test]
async fn concurrent_signups_with_one_email_create_one_user() {
    let app = spawn_app().await;
    let bodies: Vec<serde_json::Value> = (0..16)
        .map(|i| {
            let email = if i % 2 == 0 {
                "race@test.com"
            } else {
                "RACE@test.com"
            };
            json!({"email": email, "password": "password"})
        })
        .collect();
    let attempts = bodies.iter().map(|body| app.post_signup(body));
    let statuses: Vec<u16> = futures::future::join_all(attempts)
        .await
        .iter()
        .map(|r| r.code())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 400),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn signup_trims_the_email() {
    let app = spawn_app().await;
    let response = app
        .post_signup(&json!({"email": "  spaced@test.com  ", "password": "password"}))
        .await;
    assert_eq!(response.code(), 201);
    let body: serde_json::Value = response.json();
    assert_eq!(body["email"], "spaced@test.com");
}

#[tokio::test]
async fn a_body_that_is_not_json_is_a_400_in_the_error_format() {
    let app = spawn_app().await;
    for body in ["{not json", "[1,2,3]", "\"text\""] {
        let response = app
            .send(
                app.http()
                    .post(format!("{}/api/users/signup", app.address))
                    .header("content-type", "application/json")
                    .body(body),
            )
            .await;
        assert_eq!(response.code(), 400, "{body}");
        let messages = error_messages(&response);
        assert_eq!(messages.len(), 1);
    }
}
