//! Isolated live databases for the store tests.
#![allow(dead_code, unreachable_pub)]

use std::time::{SystemTime, UNIX_EPOCH};

use ticketing_core::Id;

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A name no other test uses, with its creation time: `{kind}_{seconds}_{unique}`.
pub fn unique_name(kind: &str) -> String {
    format!("{kind}_{}_{}", now_secs(), Id::new())
}

/// Whether a name made by [`unique_name`] is more than an hour old.
pub fn is_stale(name: &str, kind: &str) -> bool {
    let mut parts = name
        .strip_prefix(kind)
        .and_then(|rest| rest.strip_prefix('_'))
        .unwrap_or("")
        .split('_');
    matches!(parts.next().map(str::parse::<u64>), Some(Ok(secs)) if secs + 3600 < now_secs())
}

#[cfg(feature = "postgres")]
pub mod pg {
    use std::str::FromStr;

    use sqlx::postgres::PgConnectOptions;
    use ticketing_store::postgres::PgDatabase;

    /// The server the tests use.
    pub fn database_url() -> String {
        std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres:postgres@127.0.0.1:5432/postgres".to_owned())
    }

    /// A migrated database in a schema of its own. Schemas of earlier runs older than an hour
    /// are dropped on the way.
    pub async fn isolated_database(max_connections: u32) -> PgDatabase {
        let url = database_url();
        let admin = sqlx::PgPool::connect(&url).await.unwrap_or_else(|e| {
            panic!("PostgreSQL must be running at {url} (scripts/test starts it): {e}")
        });
        let schema = super::unique_name("test");
        let schemas: Vec<String> = sqlx::query_scalar(
            "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'test\\_%'",
        )
        .fetch_all(&admin)
        .await
        .expect("list schemas");
        for stale in schemas.iter().filter(|s| super::is_stale(s, "test")) {
            let drop = format!("DROP SCHEMA IF EXISTS \"{stale}\" CASCADE");
            let _ = sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&admin).await;
        }
        let create = format!("CREATE SCHEMA \"{schema}\"");
        sqlx::query(sqlx::AssertSqlSafe(create))
            .execute(&admin)
            .await
            .expect("create schema");
        admin.close().await;
        let options = PgConnectOptions::from_str(&url)
            .expect("DATABASE_URL")
            .options([("search_path", schema.as_str())]);
        PgDatabase::connect_with(options, max_connections)
            .await
            .expect("connect and migrate")
    }
}

#[cfg(feature = "mongo")]
pub mod mongo {
    use ticketing_store::mongo::MongoDatabase;

    /// The server the tests use: SecantusDB or MongoDB.
    pub fn mongo_uri() -> String {
        std::env::var("MONGO_URI")
            .unwrap_or_else(|_| "mongodb://127.0.0.1:27017/?directConnection=true".to_owned())
    }

    /// A database of its own, with the indexes. Databases of earlier runs older than an hour
    /// are dropped on the way.
    pub async fn isolated_database() -> MongoDatabase {
        let uri = mongo_uri();
        let name = super::unique_name("test");
        let db = MongoDatabase::connect(&uri, &name)
            .await
            .unwrap_or_else(|e| panic!("a MongoDB-wire server must be running at {uri} (scripts/test starts SecantusDB): {e}"));
        let client = db.database().client();
        if let Ok(names) = client.list_database_names().await {
            for stale in names.iter().filter(|n| super::is_stale(n, "test")) {
                let _ = client.database(stale).drop().await;
            }
        }
        db
    }
}
