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

mod backends;
mod http;
mod secret;
pub use backends::{BackendArgs, ListenerOrder};
pub use http::HttpArgs;
pub use secret::Secret;

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

/// Settings that hold the options every service takes.
pub trait ServiceSettings {
    /// The options every service takes.
    fn common(&self) -> &CommonArgs;
}

/// Declares a service's settings: a clap parser named for its binary, with the options every
/// service takes ([`CommonArgs`], flattened as `common`) followed by the fields given.
///
/// ```
/// ticketing_common::service_settings! {
///     /// The settings of a service of one's own.
///     pub struct Settings("stock", "The stock service") {
///         /// How many items a listing shows.
///         #[arg(long, env = "PAGE_SIZE", default_value_t = 20)]
///         pub page_size: usize,
///     }
/// }
/// use clap::Parser;
/// let settings = Settings::parse_from(["stock", "--jwt-key", "a-key-of-at-least-32-bytes-long!!"]);
/// assert_eq!(settings.page_size, 20);
/// ```
#[macro_export]
macro_rules! service_settings {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident($command:literal, $about:literal) {
            $($fields:tt)*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, clap::Parser)]
        #[command(name = $command, about = $about, version)]
        $vis struct $name {
            /// Options every service takes.
            #[command(flatten)]
            pub common: $crate::CommonArgs,
            $($fields)*
        }

        impl $crate::config::ServiceSettings for $name {
            fn common(&self) -> &$crate::CommonArgs {
                &self.common
            }
        }
    };
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
                partitions: None,
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
