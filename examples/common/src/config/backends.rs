//! The broker and the database: their settings from flags and variables, and connecting to them patiently at start-up.

#[allow(clippy::wildcard_imports)]
use super::*;

/// The order listeners take events in (`LISTENER_ORDER`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ListenerOrder {
    /// As they come: a version that comes before the one it follows waits for it.
    #[default]
    Arrival,
    /// Per record, in publish order ([`ticketing_core::ListenerOptions::ordered`]).
    Key,
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
    /// When the service creates or finds the event stream: partitions for per-key ordered
    /// listeners (nats-server 2.10 or later); the stream gets them if it lacks them. Every
    /// process of the system should give the same number (or none: then the stream's are used).
    #[arg(long, env = "NATS_PARTITIONS", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub nats_partitions: Option<u32>,
    /// The order the replica listeners (the tickets, orders and payments services' listeners
    /// of several events) take events in: `arrival` (any order; a version that comes early
    /// waits for the one before), or `key` (each record's events in publish order, one at a
    /// time, records in parallel; on NATS it needs `NATS_PARTITIONS`). Per key is a new consumer per partition; on NATS it
    /// starts where the group's consumers in arrival order left off.
    #[arg(long, env = "LISTENER_ORDER", value_enum, default_value_t = ListenerOrder::Arrival)]
    pub listener_order: ListenerOrder,
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
    /// PostgreSQL connections each process pools at most. With replicas the server must accept
    /// processes × this (PostgreSQL's default `max_connections` is 100).
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub database_max_connections: u32,
    /// PostgreSQL connections each process opens at start and keeps open (at most
    /// `DATABASE_MAX_CONNECTIONS`): the first burst of requests does not wait for new
    /// connections. They count against the server's `max_connections` even when idle.
    #[arg(long, env = "DATABASE_MIN_CONNECTIONS", default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=1000))]
    pub database_min_connections: u32,
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
            partitions: self.nats_partitions,
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
        .with_timeout(Duration::from_secs(self.database_timeout_seconds))
        .with_max_connections(self.database_max_connections)
        .with_min_connections(self.database_min_connections))
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
