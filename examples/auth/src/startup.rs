//! Wiring: state, router and the runnable application. No backend is named here: the
//! configured database hands out the user store.

use std::sync::Arc;

use async_trait::async_trait;
use axum::Router;
use axum::extract::FromRef;
use axum::routing::{get, post};
use ticketing_common::service::{Document, Parts, Shared};
use ticketing_common::{Service, SessionKeys};
use ticketing_core::ticketing::store::UserStore;
use ticketing_store::Database;

use crate::configuration::Settings;
use crate::guard::Guards;
use crate::routes;
use ticketing_common::openapi::SessionSecurity;

/// What the handlers share.
#[derive(Clone, FromRef)]
pub struct AuthState {
    /// Users.
    pub users: Arc<dyn UserStore>,
    /// Session keys.
    pub keys: SessionKeys,
    /// Hashing bound and sign-in limits.
    pub guards: Guards,
    /// The database, for readiness checks.
    pub database: Database,
}

impl AuthState {
    /// The state over the users of `database`.
    pub fn new(database: &Database, keys: SessionKeys, guards: Guards) -> Self {
        AuthState {
            users: database.users(),
            keys,
            guards,
            database: database.clone(),
        }
    }
}

/// The auth service's part of the API.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "Ticketing: users"),
    paths(
        routes::signup::signup,
        routes::signin::signin,
        routes::signout::signout,
        routes::current_user::current_user
    ),
    modifiers(&SessionSecurity)
)]
struct AuthApi;

/// The auth service: users and sessions, no bus.
pub struct Auth;

#[async_trait]
impl Service for Auth {
    const NAME: &'static str = "auth";
    type Settings = Settings;
    type State = AuthState;

    const USES_BUS: bool = false;

    async fn state_on(settings: &Settings, shared: &Shared) -> anyhow::Result<AuthState> {
        let keys = shared.session_keys(&settings.common)?;
        let database = settings.common.backends.open_database("auth").await?;
        Ok(AuthState::new(
            &database,
            keys,
            Guards::new(&settings.guards),
        ))
    }

    const DOCUMENT: Option<Document> = Some(Document {
        path: "/api/users/openapi.json",
        api: <AuthApi as utoipa::OpenApi>::openapi,
    });

    fn routes(state: AuthState) -> Router {
        Router::new()
            .route("/api/users/signup", post(routes::signup))
            .route("/api/users/signin", post(routes::signin))
            .route("/api/users/signout", post(routes::signout))
            .route("/api/users/currentuser", get(routes::current_user))
            .with_state(state)
    }

    fn parts(state: &AuthState) -> Parts {
        Parts::default().database("auth", &state.database)
    }
}

/// The auth service, bound and ready to run.
pub type Application = ticketing_common::Application<Auth>;
