//! Replicas in MongoDB: the one versioned-write helper of this backend, and `MongoReplicaStore<R>`.

#[allow(clippy::wildcard_imports)]
use super::*;

/// The versioned replica write every MongoDB replica collection uses (the generic document
/// collections and the ticketing system's typed ones): version 0 inserts (a taken id is a
/// conflict); version N updates the document at N − 1; under `FirstSeen` a record not held is
/// inserted at N. Anything else is a `VersionConflict`, and nothing is written.
pub(crate) async fn apply_versioned(
    collection: &Collection<Document>,
    entity: &'static str,
    id: Bson,
    version: Version,
    start: ReplicaStart,
    set: Document,
) -> Result<(), StoreError> {
    let conflict = || StoreError::conflict(entity, id_text(&id), version.saturating_sub(1));
    let insert = |set: Document| {
        let mut document = doc! {"_id": id.clone(), "version": db_version(version)?};
        document.extend(set);
        Ok::<_, StoreError>(document)
    };
    if version > 0 {
        let mut changes = set.clone();
        changes.insert("version", db_version(version)?);
        let result = collection
            .update_one(
                doc! {"_id": id.clone(), "version": db_version(version - 1)?},
                doc! {"$set": changes},
            )
            .await
            .map_err(backend)?;
        if result.matched_count == 1 {
            return Ok(());
        }
        if start == ReplicaStart::FromFirst {
            return Err(conflict());
        }
    }
    match collection.insert_one(insert(set)?).await {
        Ok(_) => Ok(()),
        Err(e) if duplicate_key(&e).is_some() => Err(conflict()),
        Err(e) => Err(backend(e)),
    }
}

/// Replicas of one record type in MongoDB: a collection of `{_id, version, doc}` documents,
/// opened by [`MongoDatabase::replicas`]. The version check is in the write itself.
pub struct MongoReplicaStore<R> {
    pub(super) replicas: Collection<Document>,
    pub(super) start: ReplicaStart,
    pub(super) record: PhantomData<fn() -> R>,
}

impl<R> Clone for MongoReplicaStore<R> {
    fn clone(&self) -> Self {
        MongoReplicaStore {
            replicas: self.replicas.clone(),
            start: self.start,
            record: PhantomData,
        }
    }
}

impl<R> fmt::Debug for MongoReplicaStore<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MongoReplicaStore")
            .field("collection", &self.replicas.name())
            .field("start", &self.start)
            .finish()
    }
}

impl<R> MongoReplicaStore<R> {
    /// This store's collection, starting records it has not seen as `start` says.
    pub fn starting(&self, start: ReplicaStart) -> Self {
        MongoReplicaStore {
            start,
            ..self.clone()
        }
    }
}

#[async_trait]
impl<R> ReplicaStore<R> for MongoReplicaStore<R>
where
    R: Replica + Serialize + DeserializeOwned,
{
    async fn find(&self, id: &R::Id) -> Result<Option<R>, StoreError> {
        let Some(found) = self
            .replicas
            .find_one(doc! {"_id": id.to_string()})
            .await
            .map_err(backend)?
        else {
            return Ok(None);
        };
        let doc = found
            .get_document("doc")
            .map_err(|e| corrupt(R::ENTITY, e))?;
        mongodb::bson::from_document(doc.clone())
            .map(Some)
            .map_err(|e| corrupt(R::ENTITY, e))
    }

    async fn apply(&self, record: &R) -> Result<(), StoreError> {
        let doc = mongodb::bson::to_document(record).map_err(|e| corrupt(R::ENTITY, e))?;
        apply_versioned(
            &self.replicas,
            R::ENTITY,
            Bson::String(record.id().to_string()),
            record.version(),
            self.start,
            doc! {"doc": doc},
        )
        .await
    }

    fn start(&self) -> ReplicaStart {
        self.start
    }
}
