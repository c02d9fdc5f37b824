//! Configuration: environment variables compatible with the original system (`JWT_KEY`,
//! `NATS_URL`, `DATABASE_URL` or `MONGO_URI`, `PORT`), the same as command-line flags.
//!
//! Backends are chosen at run time: in-memory by default; NATS when `NATS_URL` (or `--bus
//! nats`) is given; PostgreSQL when `DATABASE_URL` is, MongoDB when `MONGO_URI` is (or `--store
//! ...`). The choice itself belongs to the library crates ([`BusSettings::choose`],
//! [`StoreSettings::choose`]): this module only reads flags and variables into their settings.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use ticketing_bus::{AnyBus, BusBackend, BusSettings, NatsSettings, StreamLimits};
use ticketing_store::{Database, StoreBackend, StoreSettings};

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
    /// HTTP timeouts.
    #[command(flatten)]
    pub http: HttpArgs,
}

/// HTTP timeouts, in seconds.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct HttpArgs {
    /// A client has this long to send a request's headers; then the connection is closed.
    #[arg(long, env = "HEADER_TIMEOUT_SECONDS", default_value_t = 10)]
    pub header_timeout_seconds: u64,
    /// A client has this long to send a request's body; then the answer is 408.
    #[arg(long, env = "BODY_TIMEOUT_SECONDS", default_value_t = 10)]
    pub body_timeout_seconds: u64,
    /// A whole request may take this long; then the answer is 408.
    #[arg(long, env = "REQUEST_TIMEOUT_SECONDS", default_value_t = 30)]
    pub request_timeout_seconds: u64,
    /// After SIGTERM, requests in flight have this long to finish before open connections
    /// are closed; the listeners then settle and the bus is flushed. Keep it below the
    /// orchestrator's grace period (Kubernetes: 30 s).
    #[arg(long, env = "SHUTDOWN_DEADLINE_SECONDS", default_value_t = 20)]
    pub shutdown_deadline_seconds: u64,
    /// After SIGTERM, the service first answers `/readyz` with 503 and keeps serving for this
    /// long, so the orchestrator takes it out of its endpoints before it stops accepting
    /// connections (the manifests set 5).
    #[arg(long, env = "SHUTDOWN_DELAY_SECONDS", default_value_t = 0)]
    pub shutdown_delay_seconds: u64,
}

impl Default for HttpArgs {
    fn default() -> Self {
        HttpArgs {
            header_timeout_seconds: 10,
            body_timeout_seconds: 10,
            request_timeout_seconds: 30,
            shutdown_deadline_seconds: 20,
            shutdown_delay_seconds: 0,
        }
    }
}

impl HttpArgs {
    /// The limits the server applies.
    pub fn limits(&self) -> crate::server::HttpLimits {
        let secs = |s: u64| Duration::from_secs(s.max(1));
        crate::server::HttpLimits {
            header_timeout: secs(self.header_timeout_seconds),
            body_timeout: secs(self.body_timeout_seconds),
            request_timeout: secs(self.request_timeout_seconds),
            shutdown_deadline: Duration::from_secs(self.shutdown_deadline_seconds),
            shutdown_delay: Duration::from_secs(self.shutdown_delay_seconds),
        }
    }
}

/// Backend options.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct BackendArgs {
    /// The bus: memory or nats; default: nats when NATS_URL is set, else memory.
    #[arg(long, env = "BUS")]
    pub bus: Option<BusBackend>,
    /// NATS server URL.
    #[arg(long, env = "NATS_URL")]
    pub nats_url: Option<String>,
    /// JetStream stream of the events (dead letters go to `{stream}_DLQ`).
    #[arg(long, env = "NATS_STREAM", default_value = "TICKETING")]
    pub nats_stream: String,
    /// First subject token of every event subject.
    #[arg(long, env = "NATS_SUBJECT_PREFIX", default_value = "ticketing")]
    pub nats_subject_prefix: String,
    /// When the service creates the event stream: seconds it keeps a message (at least the
    /// 6-hour gap horizon and the expiration window). An existing stream is left as it is.
    #[arg(long, env = "NATS_MAX_AGE_SECONDS")]
    pub nats_max_age_seconds: Option<u64>,
    /// When the service creates the event stream: bytes it keeps.
    #[arg(long, env = "NATS_MAX_BYTES")]
    pub nats_max_bytes: Option<i64>,
    /// When the service creates the event stream: messages it keeps.
    #[arg(long, env = "NATS_MAX_MESSAGES")]
    pub nats_max_messages: Option<i64>,
    /// When the service creates the dead-letter stream: seconds it keeps a dead letter.
    #[arg(long, env = "NATS_DLQ_MAX_AGE_SECONDS")]
    pub nats_dlq_max_age_seconds: Option<u64>,
    /// When the service creates the dead-letter stream: bytes it keeps.
    #[arg(long, env = "NATS_DLQ_MAX_BYTES")]
    pub nats_dlq_max_bytes: Option<i64>,
    /// When the service creates the dead-letter stream: dead letters it keeps.
    #[arg(long, env = "NATS_DLQ_MAX_MESSAGES")]
    pub nats_dlq_max_messages: Option<i64>,
    /// When the service creates the streams: replicas of each (3 on a three-server JetStream
    /// cluster).
    #[arg(long, env = "NATS_STREAM_REPLICAS", default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=5))]
    pub nats_stream_replicas: u8,
    /// At start-up, how long to keep trying to reach the broker and the database (a
    /// deployment may start them together) before giving up; 0: one try.
    #[arg(long, env = "STARTUP_TIMEOUT_SECONDS", default_value_t = 0)]
    pub startup_timeout_seconds: u64,
    /// The database: memory, postgres or mongo; default: postgres when DATABASE_URL is set,
    /// mongo when MONGO_URI is, else memory.
    #[arg(long, env = "STORE")]
    pub store: Option<StoreBackend>,
    /// PostgreSQL URL; each service keeps its tables in a schema named after it.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<Secret>,
    /// MongoDB URI; the database is the one in the URI, else the service's name.
    #[arg(long, env = "MONGO_URI", hide_env_values = true)]
    pub mongo_uri: Option<Secret>,
    /// How long a request waits for the database (a pooled PostgreSQL connection, a MongoDB
    /// server) before it is answered 503 with Retry-After.
    #[arg(long, env = "DATABASE_TIMEOUT_SECONDS", default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=60))]
    pub database_timeout_seconds: u64,
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
            http: HttpArgs::default(),
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

impl BackendArgs {
    /// Tries `attempt` until it succeeds or `STARTUP_TIMEOUT_SECONDS` have passed (once when
    /// 0), waiting longer between tries (up to 5 s); the last error otherwise.
    async fn patiently<T, E, F>(&self, what: &str, mut attempt: impl FnMut() -> F) -> Result<T, E>
    where
        F: std::future::Future<Output = Result<T, E>>,
        E: std::fmt::Display,
    {
        let deadline =
            tokio::time::Instant::now() + Duration::from_secs(self.startup_timeout_seconds);
        let mut pause = Duration::from_millis(200);
        loop {
            match attempt().await {
                Ok(value) => return Ok(value),
                Err(error) if tokio::time::Instant::now() + pause < deadline => {
                    tracing::warn!(%error, retry_in = ?pause, "waiting for {what}");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// The bus settings these options mean.
    pub fn bus_settings(&self) -> anyhow::Result<BusSettings> {
        let nats = self.nats_url.as_ref().map(|url| NatsSettings {
            url: url.clone(),
            stream: self.nats_stream.clone(),
            subject_prefix: self.nats_subject_prefix.clone(),
            limits: StreamLimits {
                max_age_seconds: self.nats_max_age_seconds,
                max_bytes: self.nats_max_bytes,
                max_messages: self.nats_max_messages,
            },
            dead_letter_limits: StreamLimits {
                max_age_seconds: self.nats_dlq_max_age_seconds,
                max_bytes: self.nats_dlq_max_bytes,
                max_messages: self.nats_dlq_max_messages,
            },
            replicas: usize::from(self.nats_stream_replicas),
        });
        Ok(BusSettings::choose(self.bus, nats)?)
    }

    /// The store settings these options mean.
    pub fn store_settings(&self) -> anyhow::Result<StoreSettings> {
        Ok(StoreSettings::choose(
            self.store,
            self.database_url.as_ref().map(Secret::expose),
            self.mongo_uri.as_ref().map(Secret::expose),
        )?
        .with_timeout(Duration::from_secs(self.database_timeout_seconds)))
    }

    /// Connects the configured bus; refuses one whose stream drops events before the
    /// listeners' gap horizon.
    pub async fn connect_bus(&self) -> anyhow::Result<AnyBus> {
        let settings = self.bus_settings()?;
        let bus = self
            .patiently("the broker", || settings.connect())
            .await
            .with_context(|| format!("cannot use the {settings}"))?;
        bus.require_retention(
            crate::service::listener_options().gap_horizon,
            "the gap horizon of the listeners",
        )
        .with_context(|| format!("cannot use the {settings}"))?;
        tracing::info!(bus = %settings, "bus connected");
        Ok(bus)
    }

    /// Opens the configured database of `service` (its PostgreSQL schema, or its MongoDB
    /// database unless the URI names one), running migrations or creating indexes.
    pub async fn open_database(&self, service: &str) -> anyhow::Result<Database> {
        let settings = self.store_settings()?;
        let database = self
            .patiently("the database", || settings.open_ticketing(service))
            .await
            .with_context(|| format!("cannot use {settings}"))?;
        tracing::info!(service, store = %settings, "database open");
        Ok(database)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_variables_become_the_libraries_settings() {
        let mut args = BackendArgs::default();
        assert_eq!(args.bus_settings().unwrap(), BusSettings::Memory);
        assert_eq!(args.store_settings().unwrap(), StoreSettings::Memory);
        args.nats_url = Some("nats://x:4222".into());
        args.nats_stream = "EVENTS".into();
        args.nats_stream_replicas = 3;
        assert_eq!(
            args.bus_settings().unwrap(),
            BusSettings::Nats(NatsSettings {
                url: "nats://x:4222".into(),
                stream: "EVENTS".into(),
                subject_prefix: String::new(),
                limits: StreamLimits::default(),
                dead_letter_limits: StreamLimits::default(),
                replicas: 3,
            })
        );
        args.database_url = Some(Secret::new("postgres://u:pw@x/db"));
        assert_eq!(
            args.store_settings().unwrap().backend(),
            StoreBackend::Postgres
        );
        args.mongo_uri = Some(Secret::new("mongodb://x"));
        assert!(args.store_settings().is_err(), "both set is ambiguous");
        args.store = Some("mongo".parse().unwrap());
        assert_eq!(
            args.store_settings().unwrap().backend(),
            StoreBackend::Mongo
        );
    }

    #[test]
    fn backend_flags_parse_by_name() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            backends: BackendArgs,
        }
        let cli = Cli::try_parse_from(["x", "--bus", "memory", "--store", "postgres"]).unwrap();
        assert_eq!(cli.backends.bus, Some(BusBackend::Memory));
        assert_eq!(cli.backends.store, Some(StoreBackend::Postgres));
        let err = Cli::try_parse_from(["x", "--store", "sqlite"])
            .err()
            .unwrap();
        assert!(err.to_string().contains("unknown store backend"), "{err}");
    }

    #[test]
    fn secrets_never_print() {
        let args = CommonArgs {
            backends: BackendArgs {
                database_url: Some(Secret::new("postgres://u:hunter2@x/db")),
                ..BackendArgs::default()
            },
            ..CommonArgs::for_tests("jwt-secret-value-of-at-least-32-bytes")
        };
        let printed = format!("{args:?}");
        assert!(
            !printed.contains("hunter2") && !printed.contains("jwt-secret-value"),
            "{printed}"
        );
    }

    #[test]
    fn a_short_jwt_key_is_refused_with_what_to_do() {
        let args = CommonArgs::for_tests("asdf");
        let err = args.session_keys(true).unwrap_err().to_string();
        assert!(
            err.contains("4 bytes long") && err.contains("at least 32"),
            "{err}"
        );
        assert!(
            !err.contains("asdf"),
            "the key itself is never shown: {err}"
        );
        let args = CommonArgs::for_tests(&"k".repeat(32));
        assert!(args.session_keys(true).is_ok());
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
