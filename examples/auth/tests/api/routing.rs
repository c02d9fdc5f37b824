use crate::helpers::{assert_error, spawn_app};

#[tokio::test]
async fn unknown_routes_and_methods_are_404_in_the_error_format() {
    let app = spawn_app().await;
    let requests = [
        app.client.get(format!("{}/api/users/nope", app.address)),
        app.client.get(format!("{}/api/users/signup", app.address)),
        app.client
            .delete(format!("{}/api/users/currentuser", app.address)),
        app.client.post(format!("{}/", app.address)),
    ];
    for request in requests {
        let response = request.send().await.unwrap();
        assert_error(response, 404, "Not Found").await;
    }
}

#[tokio::test]
async fn responses_carry_a_request_id() {
    let app = spawn_app().await;
    let response = app.get_current_user(None).await;
    assert!(response.headers().contains_key("x-request-id"));
}

#[tokio::test]
async fn a_trailing_slash_reaches_the_same_route() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(format!("{}/api/users/currentuser/", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}
