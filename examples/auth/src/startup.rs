//! Wiring: state, router and the runnable application.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::FromRef;
use axum::routing::{get, post};
use ticketing_common::{CommonArgs, Database, Server, SessionKeys};
use ticketing_core::store::UserStore;
use ticketing_store::memory::InMemoryUserStore;
use tokio_util::sync::CancellationToken;

use crate::configuration::Settings;
use crate::routes;

/// What the handlers share.
#[derive(Clone)]
pub struct AuthState {
    /// Users.
    pub users: Arc<dyn UserStore>,
    /// Session keys.
    pub keys: SessionKeys,
}

impl FromRef<AuthState> for SessionKeys {
    fn from_ref(state: &AuthState) -> SessionKeys {
        state.keys.clone()
    }
}

/// The routes of `/api/users`.
pub fn router(state: AuthState) -> Router {
    Router::new()
        .route("/api/users/signup", post(routes::signup))
        .route("/api/users/signin", post(routes::signin))
        .route("/api/users/signout", post(routes::signout))
        .route("/api/users/currentuser", get(routes::current_user))
        .with_state(state)
}

/// The user store of a database.
pub fn users_of(database: &Database) -> Arc<dyn UserStore> {
    match database {
        Database::Memory => Arc::new(InMemoryUserStore::new()),
        Database::Postgres(db) => Arc::new(db.users()),
        Database::Mongo(db) => Arc::new(db.users()),
    }
}

/// The auth service, bound and ready to run.
pub struct Application {
    server: Server,
}

impl Application {
    /// Opens the configured database and binds the port.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let keys = settings.common.session_keys(true)?;
        let store = settings.common.backends.store_choice()?;
        let users = users_of(&store.open("auth").await?);
        tracing::info!(store = store.describe(), "auth service starting");
        Self::build_with(&settings.common, AuthState { users, keys }).await
    }

    /// Binds the port for this state.
    pub async fn build_with(common: &CommonArgs, state: AuthState) -> anyhow::Result<Self> {
        let addr = SocketAddr::new(common.host, common.port);
        let server = Server::bind(
            "auth",
            addr,
            router(state),
            Vec::new(),
            CancellationToken::new(),
        )
        .await?;
        Ok(Application { server })
    }

    /// The port bound.
    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// Stops the service when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.server.shutdown_token()
    }

    /// Serves until SIGINT, SIGTERM or the shutdown token.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.run_until_stopped().await
    }
}
