use crate::helpers::{assert_error, spawn_app};

#[tokio::test]
async fn unknown_routes_and_methods_are_404_in_the_error_format() {
    let app = spawn_app().await;
    let requests = [
        app.http().get(format!("{}/api/users/nope", app.address)),
        app.http().get(format!("{}/api/users/signup", app.address)),
        app.http()
            .delete(format!("{}/api/users/currentuser", app.address)),
        app.http().post(format!("{}/", app.address)),
    ];
    for request in requests {
        let response = app.send(request).await;
        assert_error(&response, 404, "Not Found");
    }
}

#[tokio::test]
async fn responses_carry_a_request_id() {
    let app = spawn_app().await;
    let response = app.get_current_user(None).await;
    assert!(response.headers.contains_key("x-request-id"));
}

#[tokio::test]
async fn a_trailing_slash_reaches_the_same_route() {
    let app = spawn_app().await;
    let response = app
        .send(
            app.http()
                .get(format!("{}/api/users/currentuser/", app.address)),
        )
        .await;
    assert_eq!(response.code(), 200);
}
