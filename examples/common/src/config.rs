//! Configuration: environment variables compatible with the original system (`JWT_KEY`,
//! `NATS_URL`, `DATABASE_URL` or `MONGO_URI`, `PORT`), the same as command-line flags.
//!
//! Backends are chosen at run time: in-memory by default; NATS when `NATS_URL` (or `--bus
//! nats`) is given; PostgreSQL when `DATABASE_URL` is, MongoDB when `MONGO_URI` is (or `--store
//! ...`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use ticketing_bus::memory::InMemoryBus;
use ticketing_bus::nats::{NatsBus, NatsBusConfig};
use ticketing_core::Bus;
use ticketing_store::mongo::MongoDatabase;
use ticketing_store::postgres::PgDatabase;

use crate::session::SessionKeys;

/// A value that must never reach a log line (keys, URLs with passwords).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_owned()))
    }
}

/// Which bus to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BusKind {
    /// The in-memory bus: one process only.
    Memory,
    /// NATS JetStream at `NATS_URL`.
    Nats,
}

/// Which database to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StoreKind {
    /// In-memory stores: lost on exit.
    Memory,
    /// PostgreSQL at `DATABASE_URL`.
    Postgres,
    /// MongoDB at `MONGO_URI`.
    Mongo,
}

/// Options every service takes.
#[derive(Debug, Clone, clap::Args)]
pub struct CommonArgs {
    /// Port to listen on (0 picks a free one).
    #[arg(long, env = "PORT", default_value_t = 3000)]
    pub port: u16,
    /// Address to listen on.
    #[arg(long, env = "HOST", default_value_t = IpAddr::V4(Ipv4Addr::UNSPECIFIED))]
    pub host: IpAddr,
    /// Secret that signs session tokens. Required.
    #[arg(long = "jwt-key", env = "JWT_KEY", hide_env_values = true)]
    pub jwt_key: Option<Secret>,
    /// How long a session lasts, in seconds.
    #[arg(long, env = "JWT_TTL_SECONDS", default_value_t = 86_400)]
    pub jwt_ttl_seconds: u64,
    /// Mark session cookies `Secure` (the deployment is served over HTTPS).
    #[arg(long, env = "SECURE_COOKIES")]
    pub secure_cookies: Option<bool>,
    /// Backends.
    #[command(flatten)]
    pub backends: BackendArgs,
}

/// Backend options.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct BackendArgs {
    /// The bus; default: nats when NATS_URL is set, else memory.
    #[arg(long, env = "BUS", value_enum)]
    pub bus: Option<BusKind>,
    /// NATS server URL.
    #[arg(long, env = "NATS_URL")]
    pub nats_url: Option<String>,
    /// JetStream stream of the events (dead letters go to `{stream}_DLQ`).
    #[arg(long, env = "NATS_STREAM", default_value = "TICKETING")]
    pub nats_stream: String,
    /// First subject token of every event subject.
    #[arg(long, env = "NATS_SUBJECT_PREFIX", default_value = "ticketing")]
    pub nats_subject_prefix: String,
    /// The database; default: postgres when DATABASE_URL is set, mongo when MONGO_URI is,
    /// else memory.
    #[arg(long, env = "STORE", value_enum)]
    pub store: Option<StoreKind>,
    /// PostgreSQL URL; each service keeps its tables in a schema named after it.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<Secret>,
    /// MongoDB URI; the database is the one in the URI, else the service's name.
    #[arg(long, env = "MONGO_URI", hide_env_values = true)]
    pub mongo_uri: Option<Secret>,
}

impl CommonArgs {
    /// Arguments for tests and embedding: the given key, port 0, in-memory backends.
    pub fn for_tests(jwt_key: &str) -> Self {
        CommonArgs {
            port: 0,
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            jwt_key: Some(Secret::new(jwt_key)),
            jwt_ttl_seconds: 3600,
            secure_cookies: Some(false),
            backends: BackendArgs {
                nats_stream: "TICKETING".into(),
                nats_subject_prefix: "ticketing".into(),
                ..BackendArgs::default()
            },
        }
    }

    /// The session keys; fails, saying what to do, without `JWT_KEY`.
    pub fn session_keys(&self, secure_by_default: bool) -> anyhow::Result<SessionKeys> {
        let key = self.jwt_key.as_ref().context(
            "JWT_KEY must be set (environment variable or --jwt-key): it signs session tokens, \
             e.g. JWT_KEY=$(openssl rand -hex 32)",
        )?;
        let secure = self.secure_cookies.unwrap_or(secure_by_default);
        Ok(SessionKeys::new(
            key.expose(),
            Duration::from_secs(self.jwt_ttl_seconds),
            secure,
        )?)
    }
}

/// The bus chosen by the configuration.
#[derive(Debug, Clone)]
pub enum BusChoice {
    /// In memory.
    Memory,
    /// NATS JetStream.
    Nats(NatsBusConfig),
}

/// The database chosen by the configuration.
#[derive(Debug, Clone)]
pub enum StoreChoice {
    /// In memory.
    Memory,
    /// PostgreSQL.
    Postgres(Secret),
    /// MongoDB.
    Mongo(Secret),
}

impl BackendArgs {
    /// The bus to use.
    pub fn bus_choice(&self) -> anyhow::Result<BusChoice> {
        let kind = self.bus.unwrap_or(if self.nats_url.is_some() {
            BusKind::Nats
        } else {
            BusKind::Memory
        });
        Ok(match kind {
            BusKind::Memory => BusChoice::Memory,
            BusKind::Nats => {
                let url = self.nats_url.clone().context("--bus nats needs NATS_URL")?;
                BusChoice::Nats(NatsBusConfig {
                    url,
                    stream: self.nats_stream.clone(),
                    dead_letter_stream: format!("{}_DLQ", self.nats_stream),
                    subject_prefix: self.nats_subject_prefix.clone(),
                    ..NatsBusConfig::default()
                })
            }
        })
    }

    /// The database to use.
    pub fn store_choice(&self) -> anyhow::Result<StoreChoice> {
        let kind = match (self.store, &self.database_url, &self.mongo_uri) {
            (Some(kind), _, _) => kind,
            (None, Some(_), Some(_)) => {
                bail!(
                    "both DATABASE_URL and MONGO_URI are set: choose one with --store postgres|mongo"
                )
            }
            (None, Some(_), None) => StoreKind::Postgres,
            (None, None, Some(_)) => StoreKind::Mongo,
            (None, None, None) => StoreKind::Memory,
        };
        Ok(match kind {
            StoreKind::Memory => StoreChoice::Memory,
            StoreKind::Postgres => StoreChoice::Postgres(
                self.database_url
                    .clone()
                    .context("--store postgres needs DATABASE_URL")?,
            ),
            StoreKind::Mongo => StoreChoice::Mongo(
                self.mongo_uri
                    .clone()
                    .context("--store mongo needs MONGO_URI")?,
            ),
        })
    }
}

/// A connected bus; `memory` is set for the in-memory bus, whose harness tests use.
#[derive(Clone)]
pub struct ConnectedBus {
    /// The bus, as services take it.
    pub bus: Arc<dyn Bus>,
    /// The in-memory bus, when that is the one.
    pub memory: Option<InMemoryBus>,
}

impl BusChoice {
    /// Connects (NATS) or creates (memory) the bus.
    pub async fn connect(&self) -> anyhow::Result<ConnectedBus> {
        Ok(match self {
            BusChoice::Memory => {
                let memory = InMemoryBus::new();
                ConnectedBus {
                    bus: memory.as_dyn(),
                    memory: Some(memory),
                }
            }
            BusChoice::Nats(config) => {
                let bus = NatsBus::connect(config.clone())
                    .await
                    .with_context(|| format!("cannot use NATS JetStream at {}", config.url))?;
                ConnectedBus {
                    bus: bus.as_dyn(),
                    memory: None,
                }
            }
        })
    }

    /// A short description for the start-up log line.
    pub fn describe(&self) -> String {
        match self {
            BusChoice::Memory => "in-memory bus".into(),
            BusChoice::Nats(config) => format!(
                "NATS JetStream at {} (stream {})",
                config.url, config.stream
            ),
        }
    }
}

/// An open database for one service.
#[derive(Debug, Clone)]
pub enum Database {
    /// In memory: the service creates its stores.
    Memory,
    /// PostgreSQL, in the service's schema.
    Postgres(PgDatabase),
    /// MongoDB.
    Mongo(MongoDatabase),
}

impl StoreChoice {
    /// Opens the database of `service` (its PostgreSQL schema, or its MongoDB database unless
    /// the URI names one), running migrations or creating indexes.
    pub async fn open(&self, service: &str) -> anyhow::Result<Database> {
        Ok(match self {
            StoreChoice::Memory => Database::Memory,
            StoreChoice::Postgres(url) => Database::Postgres(
                PgDatabase::connect_schema(url.expose(), service)
                    .await
                    .context("cannot use PostgreSQL at DATABASE_URL")?,
            ),
            StoreChoice::Mongo(uri) => Database::Mongo(
                MongoDatabase::connect_default(uri.expose(), service)
                    .await
                    .context("cannot use MongoDB at MONGO_URI")?,
            ),
        })
    }

    /// A short description for the start-up log line (no credentials).
    pub fn describe(&self) -> &'static str {
        match self {
            StoreChoice::Memory => "in-memory stores",
            StoreChoice::Postgres(_) => "PostgreSQL",
            StoreChoice::Mongo(_) => "MongoDB",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_is_the_default_and_urls_select_backends() {
        let mut args = BackendArgs::default();
        assert!(matches!(args.bus_choice().unwrap(), BusChoice::Memory));
        assert!(matches!(args.store_choice().unwrap(), StoreChoice::Memory));
        args.nats_url = Some("nats://x:4222".into());
        assert!(matches!(args.bus_choice().unwrap(), BusChoice::Nats(_)));
        args.database_url = Some(Secret::new("postgres://u:pw@x/db"));
        assert!(matches!(
            args.store_choice().unwrap(),
            StoreChoice::Postgres(_)
        ));
        args.mongo_uri = Some(Secret::new("mongodb://x"));
        assert!(args.store_choice().is_err(), "both set is ambiguous");
        args.store = Some(StoreKind::Mongo);
        assert!(matches!(
            args.store_choice().unwrap(),
            StoreChoice::Mongo(_)
        ));
        args.bus = Some(BusKind::Memory);
        assert!(matches!(args.bus_choice().unwrap(), BusChoice::Memory));
    }

    #[test]
    fn secrets_never_print() {
        let args = CommonArgs {
            backends: BackendArgs {
                database_url: Some(Secret::new("postgres://u:hunter2@x/db")),
                ..BackendArgs::default()
            },
            ..CommonArgs::for_tests("jwt-secret-value")
        };
        let printed = format!("{args:?}");
        assert!(
            !printed.contains("hunter2") && !printed.contains("jwt-secret-value"),
            "{printed}"
        );
    }

    #[test]
    fn a_missing_jwt_key_says_what_to_do() {
        let args = CommonArgs {
            jwt_key: None,
            ..CommonArgs::for_tests("x")
        };
        let err = args.session_keys(true).unwrap_err().to_string();
        assert!(err.contains("JWT_KEY must be set"), "{err}");
    }
}
