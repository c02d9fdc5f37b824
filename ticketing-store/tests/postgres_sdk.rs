//! The generic suites against PostgreSQL: replicas of a record that is not a ticket in a JSONB
//! document table, and a service's own table whose changes append their events to the outbox
//! inside the service's own transaction. A schema per case.
#![cfg(feature = "postgres")]

use std::sync::Arc;

use async_trait::async_trait;
use sqlx::error::ErrorKind;
use ticketing_core::conformance::commit::{CommitFactory, Committer};
use ticketing_core::conformance::replica::{Shipment, ShipmentStores};
use ticketing_core::outbox::Outbox;
use ticketing_core::store::{ReplicaStore, StoreError};
use ticketing_core::{OutgoingMessage, ReplicaStart, Version};
use ticketing_store::postgres::{PgDatabase, append, error};

async fn database() -> PgDatabase {
    let url = ticketing_test_live::database_url();
    let schema = ticketing_test_live::fresh_pg_schema("sdk").await;
    PgDatabase::connect_schema_with(&url, &schema, 16)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL must be running (scripts/test starts it): {e}"))
}

struct Postgres;

#[async_trait]
impl ShipmentStores for Postgres {
    async fn shipments(&self, start: ReplicaStart) -> Arc<dyn ReplicaStore<Shipment>> {
        let db = database().await;
        Arc::new(
            db.replicas::<Shipment>("shipments", start)
                .await
                .expect("replicas"),
        )
    }
}

ticketing_core::replica_conformance_tests!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    factory = Postgres
);

/// The service's own `parcels` table; each change and its events in one transaction.
struct Parcels {
    db: PgDatabase,
}

#[async_trait]
impl Committer for Parcels {
    async fn create(&self, id: &str, events: Vec<OutgoingMessage>) -> Result<(), StoreError> {
        let mut tx = self.db.pool().begin().await.map_err(error)?;
        let inserted = sqlx::query("INSERT INTO parcels (id, version) VALUES ($1, 0)")
            .bind(id)
            .execute(&mut *tx)
            .await;
        match inserted {
            Ok(_) => {}
            Err(sqlx::Error::Database(e)) if e.kind() == ErrorKind::UniqueViolation => {
                return Err(StoreError::AlreadyExists {
                    entity: "parcel",
                    key: id.to_owned(),
                });
            }
            Err(e) => return Err(error(e)),
        }
        append(&mut tx, &format!("parcel:{id}"), &events).await?;
        tx.commit().await.map_err(error)
    }

    async fn update(
        &self,
        id: &str,
        expected: Version,
        events: Vec<OutgoingMessage>,
    ) -> Result<(), StoreError> {
        let mut tx = self.db.pool().begin().await.map_err(error)?;
        let changed =
            sqlx::query("UPDATE parcels SET version = version + 1 WHERE id = $1 AND version = $2")
                .bind(id)
                .bind(expected as i64)
                .execute(&mut *tx)
                .await
                .map_err(error)?
                .rows_affected();
        if changed == 0 {
            return Err(StoreError::conflict("parcel", id, expected));
        }
        append(&mut tx, &format!("parcel:{id}"), &events).await?;
        tx.commit().await.map_err(error)
    }

    async fn version(&self, id: &str) -> Result<Option<Version>, StoreError> {
        let version: Option<i64> = sqlx::query_scalar("SELECT version FROM parcels WHERE id = $1")
            .bind(id)
            .fetch_optional(self.db.pool())
            .await
            .map_err(error)?;
        Ok(version.map(|v| v as Version))
    }

    fn outbox(&self) -> Arc<dyn Outbox> {
        Arc::new(self.db.outbox())
    }
}

#[async_trait]
impl CommitFactory for Postgres {
    async fn committer(&self) -> Arc<dyn Committer> {
        let db = database().await;
        sqlx::query("CREATE TABLE parcels (id TEXT PRIMARY KEY, version BIGINT NOT NULL)")
            .execute(db.pool())
            .await
            .expect("the service's own table");
        Arc::new(Parcels { db })
    }
}

ticketing_core::commit_conformance_tests!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    factory = Postgres
);

#[tokio::test]
async fn a_table_name_that_is_not_a_plain_identifier_is_refused() {
    let db = database().await;
    let refused = db
        .replicas::<Shipment>("shipments; DROP TABLE outbox", ReplicaStart::FromFirst)
        .await;
    assert!(refused.is_err());
}

#[tokio::test]
async fn an_unreachable_database_is_unavailable_within_the_acquire_timeout() {
    // Nothing listens on port 1: the connection is refused at once.
    let started = std::time::Instant::now();
    let refused = PgDatabase::connect("postgres://postgres@127.0.0.1:1/postgres")
        .await
        .expect_err("refused");
    assert!(refused.is_unavailable(), "{refused}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

/// The pool opens its minimum of connections when it is made (at most its maximum), so a
/// first burst does not wait for connections.
#[tokio::test]
async fn the_pool_opens_its_minimum_at_start_and_never_more_than_its_maximum() {
    let url = ticketing_test_live::database_url();
    for (min, max, expected) in [(3, 4, 3), (9, 2, 2)] {
        let schema = ticketing_test_live::fresh_pg_schema("sdk").await;
        let settings = ticketing_store::StoreSettings::Postgres {
            url: url.clone(),
            schema: Some(schema),
            max_connections: None,
            min_connections: None,
            timeout_seconds: None,
        }
        .with_max_connections(max)
        .with_min_connections(min);
        let ticketing_store::Database::Postgres(db) = settings.open("pool").await.expect("opens")
        else {
            panic!("postgres")
        };
        ticketing_test_live::wait_until(std::time::Duration::from_secs(10), || {
            db.pool().size() >= expected
        })
        .await;
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert_eq!(db.pool().size(), expected, "min {min}, max {max}");
    }
}
