//! Replicas in PostgreSQL: the one versioned-write helper of this backend, and `PgReplicaStore<R>` on a JSONB document table.

#[allow(clippy::wildcard_imports)]
use super::*;

/// The statements of a versioned replica write on a table with `id` and `version` columns: the
/// one helper every PostgreSQL replica table uses (the generic document tables and the
/// ticketing system's typed ones). Parameters: `$1` the id, then the columns in order, then the
/// version.
#[derive(Debug)]
pub(crate) struct VersionedSql {
    /// Version 0: a new row, or nothing.
    pub(super) insert: Arc<str>,
    /// Version N > 0: the row at N − 1, or nothing.
    pub(super) update: Arc<str>,
    /// Version N > 0 under `FirstSeen`: a new row, or the row at N − 1, or nothing.
    pub(super) upsert: Arc<str>,
}

impl VersionedSql {
    /// `table` quoted or plain; each column with the cast its parameter needs (`""`, `"::jsonb"`).
    pub(crate) fn new(table: &str, columns: &[(&str, &str)]) -> Self {
        let version = columns.len() + 2;
        let names: Vec<&str> = columns.iter().map(|(name, _)| *name).collect();
        let params: Vec<String> = columns
            .iter()
            .enumerate()
            .map(|(i, (_, cast))| format!("${}{cast}", i + 2))
            .collect();
        let sets: Vec<String> = names
            .iter()
            .zip(&params)
            .map(|(name, param)| format!("{name} = {param}"))
            .collect();
        let excluded: Vec<String> = names
            .iter()
            .map(|name| format!("{name} = EXCLUDED.{name}"))
            .collect();
        let insert = format!(
            "INSERT INTO {table} (id, {}, version) VALUES ($1, {}, ${version})",
            names.join(", "),
            params.join(", ")
        );
        VersionedSql {
            update: Arc::from(format!(
                "UPDATE {table} SET {}, version = ${version} WHERE id = $1 AND version = ${version} - 1",
                sets.join(", ")
            )),
            upsert: Arc::from(format!(
                "{insert} ON CONFLICT (id) DO UPDATE SET {}, version = EXCLUDED.version \
                 WHERE {table}.version = EXCLUDED.version - 1",
                excluded.join(", ")
            )),
            insert: Arc::from(format!("{insert} ON CONFLICT (id) DO NOTHING")),
        }
    }

    /// Runs the write of `version` of record `id`; `bind` binds the columns. One row touched is
    /// applied, none a `VersionConflict`.
    pub(crate) async fn apply<'q>(
        &self,
        pool: &PgPool,
        start: ReplicaStart,
        entity: &'static str,
        id: &str,
        version: Version,
        bind: impl FnOnce(
            sqlx::query::Query<'q, Postgres, PgArguments>,
        ) -> sqlx::query::Query<'q, Postgres, PgArguments>,
    ) -> Result<(), StoreError> {
        let sql = match (version, start) {
            (0, _) => &self.insert,
            (_, ReplicaStart::FromFirst) => &self.update,
            (_, ReplicaStart::FirstSeen) => &self.upsert,
        };
        let query = sqlx::query(sqlx::AssertSqlSafe(sql.clone())).bind(id.to_owned());
        let done = bind(query)
            .bind(db_version(version)?)
            .execute(pool)
            .await
            .map_err(backend)?
            .rows_affected();
        if done == 1 {
            Ok(())
        } else {
            Err(StoreError::conflict(entity, id, version.saturating_sub(1)))
        }
    }
}

/// Replicas of one record type in PostgreSQL: a document table (`id`, `version`, `doc JSONB`)
/// opened by [`PgDatabase::replicas`]. The version check is in the write itself.
pub struct PgReplicaStore<R> {
    pub(super) pool: PgPool,
    pub(super) sql: Arc<VersionedSql>,
    pub(super) find: Arc<str>,
    pub(super) start: ReplicaStart,
    pub(super) record: PhantomData<fn() -> R>,
}

impl<R> Clone for PgReplicaStore<R> {
    fn clone(&self) -> Self {
        PgReplicaStore {
            pool: self.pool.clone(),
            sql: self.sql.clone(),
            find: self.find.clone(),
            start: self.start,
            record: PhantomData,
        }
    }
}

impl<R> fmt::Debug for PgReplicaStore<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgReplicaStore")
            .field("find", &self.find)
            .field("start", &self.start)
            .finish_non_exhaustive()
    }
}

impl<R> PgReplicaStore<R> {
    /// This store's table, starting records it has not seen as `start` says.
    pub fn starting(&self, start: ReplicaStart) -> Self {
        PgReplicaStore {
            start,
            ..self.clone()
        }
    }
}

#[async_trait]
impl<R> ReplicaStore<R> for PgReplicaStore<R>
where
    R: Replica + Serialize + DeserializeOwned,
{
    async fn find(&self, id: &R::Id) -> Result<Option<R>, StoreError> {
        let doc: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(self.find.clone()))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        doc.map(|doc| serde_json::from_str(&doc).map_err(|e| corrupt(R::ENTITY, e)))
            .transpose()
    }

    async fn apply(&self, record: &R) -> Result<(), StoreError> {
        let doc = serde_json::to_string(record).map_err(|e| corrupt(R::ENTITY, e))?;
        self.sql
            .apply(
                &self.pool,
                self.start,
                R::ENTITY,
                &record.id().to_string(),
                record.version(),
                |query| query.bind(doc),
            )
            .await
    }

    fn start(&self) -> ReplicaStart {
        self.start
    }
}
