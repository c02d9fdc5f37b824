//! The OpenAPI 3.1 documents of the services, generated from the handlers' annotations
//! (utoipa): each service serves its own under its prefix (`/api/users/openapi.json`, ...), the
//! all-in-one app the merged document at `/api/openapi.json`.

use axum::Json;
use axum::Router;
use axum::routing::get;
use utoipa::Modify;
use utoipa::openapi::OpenApi;
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};

/// Adds the two ways to present a session, the `session` cookie and a bearer token, and
/// requires one of them of every operation that can answer 401 (`Not signed in`).
pub struct SessionSecurity;

impl Modify for SessionSecurity {
    fn modify(&self, openapi: &mut OpenApi) {
        let signed_in = || {
            vec![
                SecurityRequirement::new("session", Vec::<String>::new()),
                SecurityRequirement::new("bearer", Vec::<String>::new()),
            ]
        };
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                if operation.responses.responses.contains_key("401") {
                    operation.security.get_or_insert_with(signed_in);
                }
            }
        }
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new("session"))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// A route serving `document` as JSON at `path`.
pub fn document_route(path: &str, document: OpenApi) -> Router {
    let json = std::sync::Arc::new(document);
    Router::new().route(
        path,
        get(move || {
            let json = json.clone();
            async move { Json((*json).clone()) }
        }),
    )
}
