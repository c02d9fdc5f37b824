//! MongoDB stores, on the official driver.
//!
//! [`MongoDatabase::connect`] opens a client on one database. Then:
//!
//! - **Your document and its events in one write:** without a replica set there are no
//!   multi-document transactions, so the outbox lives in the record's own document (an `outbox`
//!   array). [`MongoDatabase::insert_announcing`] and [`MongoDatabase::update_announcing`] write
//!   your document (your filter, your update) and push its pending events in one
//!   single-document operation, which MongoDB applies atomically. A relay drains the
//!   collections you name: [`MongoDatabase::outbox_for`].
//! - **Replicas of any record type:** [`MongoDatabase::replicas`] opens a [`MongoReplicaStore`],
//!   a collection of `{_id, version, doc}` documents.
//!
//! ```no_run
//! # async fn demo() -> Result<(), ticketing_core::StoreError> {
//! use mongodb::bson::doc;
//! use ticketing_core::OutgoingMessage;
//! use ticketing_store::mongo::MongoDatabase;
//!
//! let db = MongoDatabase::connect("mongodb://127.0.0.1:27017/?directConnection=true", "billing").await?;
//! let debited = OutgoingMessage::new("account:debited", r#"{"id":"a1"}"#);
//! let after = db
//!     .update_announcing(
//!         "accounts",
//!         doc! {"_id": "a1", "version": 3_i64},
//!         doc! {"$inc": {"balance": -10_i64, "version": 1_i64}},
//!         vec![debited],
//!     )
//!     .await?;
//! assert!(after.is_some(), "None: no document at that version");
//! let outbox = db.outbox_for(&["accounts"]).await?; // for spawn_relay
//! # let _ = outbox; Ok(()) }
//! ```
//!
//! A server that cannot be reached within [`DEFAULT_SERVER_SELECTION_TIMEOUT`] (unless the URI
//! sets `serverSelectionTimeoutMS`) is [`StoreError::Unavailable`].
//!
//! With feature `ticketing`, the same database also hands out the ticketing roles
//! (`MongoTicketStore`, `MongoOrderStore`, ...) once `MongoDatabase::create_indexes` ran.

use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use mongodb::bson::oid::ObjectId;
use mongodb::bson::spec::BinarySubtype;
use mongodb::bson::{Binary, Bson, Document, doc};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::{IndexOptions, ReturnDocument};
use mongodb::{Collection, IndexModel};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Notify;

use ticketing_core::OutgoingMessage;
use ticketing_core::outbox::{Outbox, OutboxEvent, OutboxId};
use ticketing_core::store::{Replica, ReplicaStore, StoreError, outbox_key};
use ticketing_core::version::{ReplicaStart, Version};

#[cfg(feature = "ticketing")]
mod ticketing;
#[cfg(feature = "ticketing")]
#[cfg_attr(docsrs, doc(cfg(feature = "ticketing")))]
pub use ticketing::{
    MongoOrderReplicaStore, MongoOrderStore, MongoPayableOrderStore, MongoPaymentStore,
    MongoTicketReplicaStore, MongoTicketStore, MongoUserStore,
};

const BACKEND: &str = "mongo";
/// The array of pending events inside a record's document.
pub const OUTBOX: &str = "outbox";

/// How long an operation waits to find a server before the store answers
/// [`StoreError::Unavailable`], unless the URI says otherwise: 3 s (the driver's default is
/// 30 s).
pub const DEFAULT_SERVER_SELECTION_TIMEOUT: Duration = Duration::from_secs(3);

/// A driver error as a [`StoreError`]: `Unavailable` when the server cannot be reached (no
/// server selected in time, a network error, a pool cleared after one), `Backend` otherwise.
/// For the `map_err` of your own operations.
pub fn error(error: mongodb::error::Error) -> StoreError {
    backend(error)
}

pub(crate) fn backend(error: impl Into<ticketing_core::bus::BoxError>) -> StoreError {
    let error = error.into();
    let unreachable = error
        .downcast_ref::<mongodb::error::Error>()
        .is_some_and(|e| {
            matches!(
                &*e.kind,
                ErrorKind::ServerSelection { .. }
                    | ErrorKind::Io(_)
                    | ErrorKind::ConnectionPoolCleared { .. }
                    | ErrorKind::DnsResolve { .. }
            )
        });
    if unreachable {
        StoreError::Unavailable {
            backend: BACKEND,
            source: error,
        }
    } else {
        StoreError::Backend {
            backend: BACKEND,
            source: error,
        }
    }
}

pub(crate) fn corrupt(entity: &'static str, reason: impl ToString) -> StoreError {
    StoreError::Corrupt {
        entity,
        reason: reason.to_string(),
    }
}

/// If the error is a duplicate key (code 11000), the message naming the index.
pub(crate) fn duplicate_key(error: &mongodb::error::Error) -> Option<&str> {
    match &*error.kind {
        ErrorKind::Write(WriteFailure::WriteError(e)) if e.code == 11000 => Some(&e.message),
        ErrorKind::Command(e) if e.code == 11000 => Some(&e.message),
        _ => None,
    }
}

pub(crate) fn db_version(version: Version) -> Result<i64, StoreError> {
    i64::try_from(version).map_err(|e| corrupt("version", e))
}

pub(crate) fn millis(time: DateTime<Utc>) -> mongodb::bson::DateTime {
    mongodb::bson::DateTime::from_millis(time.timestamp_millis())
}

/// A MongoDB database.
#[derive(Debug, Clone)]
pub struct MongoDatabase {
    db: mongodb::Database,
    wake: Arc<Notify>,
}

impl MongoDatabase {
    /// A round trip: the `ping` command; `Unavailable` when the server cannot be reached.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.db
            .run_command(doc! {"ping": 1})
            .await
            .map(|_| ())
            .map_err(backend)
    }

    /// Connects to `uri` and uses `database`.
    pub async fn connect(uri: &str, database: &str) -> Result<Self, StoreError> {
        Self::connect_with(uri, Some(database), database, None).await
    }

    /// Connects to `uri` and uses the database it names, or `fallback` if it names none.
    pub async fn connect_default(uri: &str, fallback: &str) -> Result<Self, StoreError> {
        Self::connect_with(uri, None, fallback, None).await
    }

    /// Connects to `uri` and uses `database`, else the database the URI names, else
    /// `fallback`; an operation waits at most `timeout` to reach a server (default: the URI's
    /// `serverSelectionTimeoutMS`, else [`DEFAULT_SERVER_SELECTION_TIMEOUT`]).
    pub async fn connect_with(
        uri: &str,
        database: Option<&str>,
        fallback: &str,
        timeout: Option<Duration>,
    ) -> Result<Self, StoreError> {
        let mut options = mongodb::options::ClientOptions::parse(uri)
            .await
            .map_err(|e| backend(format!("invalid MongoDB URI: {e}")))?;
        match timeout {
            Some(timeout) => options.server_selection_timeout = Some(timeout),
            None => {
                options
                    .server_selection_timeout
                    .get_or_insert(DEFAULT_SERVER_SELECTION_TIMEOUT);
            }
        }
        let client = mongodb::Client::with_options(options).map_err(backend)?;
        let database = match database {
            Some(name) => client.database(name),
            None => client
                .default_database()
                .unwrap_or_else(|| client.database(fallback)),
        };
        Ok(MongoDatabase::from_database(database))
    }

    /// Uses a database handle.
    pub fn from_database(db: mongodb::Database) -> Self {
        MongoDatabase {
            db,
            wake: Arc::new(Notify::new()),
        }
    }

    /// The database handle.
    pub fn database(&self) -> &mongodb::Database {
        &self.db
    }

    /// Inserts `document` into `collection` with `messages` as its pending events, in one
    /// write. A taken `_id` (or other unique key) is `AlreadyExists`, and nothing is written.
    pub async fn insert_announcing(
        &self,
        collection: &str,
        mut document: Document,
        messages: Vec<OutgoingMessage>,
    ) -> Result<(), StoreError> {
        let any = !messages.is_empty();
        let key = document.get("_id").map(id_text).unwrap_or_default();
        document.insert(OUTBOX, outbox_entries(messages));
        match self
            .db
            .collection::<Document>(collection)
            .insert_one(document)
            .await
        {
            Ok(_) => {
                if any {
                    self.wake.notify_one();
                }
                Ok(())
            }
            Err(e) if duplicate_key(&e).is_some() => Err(StoreError::AlreadyExists {
                entity: "document",
                key: format!("{collection}:{key}"),
            }),
            Err(e) => Err(backend(e)),
        }
    }

    /// Applies `update` to the one document of `collection` that `filter` matches and pushes
    /// `messages` as its pending events, in one single-document write; returns the document
    /// after it (without its pending events), or `None` when nothing matched — say, a filter
    /// on `{_id, version}` whose version moved on — and then nothing is written.
    pub async fn update_announcing(
        &self,
        collection: &str,
        filter: Document,
        mut update: Document,
        messages: Vec<OutgoingMessage>,
    ) -> Result<Option<Document>, StoreError> {
        let any = !messages.is_empty();
        if any {
            let entries = outbox_entries(messages);
            match update.get_mut("$push") {
                Some(Bson::Document(push)) => {
                    push.insert(OUTBOX, doc! {"$each": entries});
                }
                Some(_) => return Err(backend("`$push` of an update must be a document")),
                None => {
                    update.insert("$push", doc! {OUTBOX: {"$each": entries}});
                }
            }
        }
        let after = self
            .db
            .collection::<Document>(collection)
            .find_one_and_update(filter, update)
            .projection(doc! {OUTBOX: 0})
            .return_document(ReturnDocument::After)
            .await
            .map_err(backend)?;
        if any && after.is_some() {
            self.wake.notify_one();
        }
        Ok(after)
    }

    /// The outbox of the documents of `collections`: what [`insert_announcing`](Self::insert_announcing)
    /// and [`update_announcing`](Self::update_announcing) left pending there, for a relay.
    /// Creates the index the relay reads by (idempotent).
    pub async fn outbox_for(&self, collections: &[&str]) -> Result<MongoOutbox, StoreError> {
        for collection in collections {
            self.db
                .collection::<Document>(collection)
                .create_index(
                    IndexModel::builder()
                        .keys(doc! {"outbox.eid": 1})
                        .options(IndexOptions::builder().sparse(true).build())
                        .build(),
                )
                .await
                .map_err(backend)?;
        }
        let pairs: Vec<(&str, &str)> = collections.iter().map(|c| (*c, *c)).collect();
        Ok(self.outbox_of(&pairs))
    }

    /// The outbox of these `(collection, entity)` pairs; event keys are `entity:<_id>`.
    fn outbox_of(&self, collections: &[(&str, &str)]) -> MongoOutbox {
        MongoOutbox {
            db: self.db.clone(),
            collections: Arc::new(
                collections
                    .iter()
                    .map(|(c, e)| (c.to_string(), e.to_string()))
                    .collect(),
            ),
            wake: self.wake.clone(),
            read: Arc::default(),
        }
    }

    /// The replica store of record type `R` in `collection` (documents `{_id: <id as text>,
    /// version, doc}`), starting records it has not seen as `start` says. Ids are stored as
    /// their `Display` text, which must tell them apart.
    pub fn replicas<R>(&self, collection: &str, start: ReplicaStart) -> MongoReplicaStore<R>
    where
        R: Replica + Serialize + DeserializeOwned,
    {
        MongoReplicaStore {
            replicas: self.db.collection(collection),
            start,
            record: PhantomData,
        }
    }
}

/// An `_id` as the text of an outbox key.
fn id_text(id: &Bson) -> String {
    match id {
        Bson::ObjectId(oid) => oid.to_hex(),
        Bson::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// The BSON of pending events, each with an id of its own (`eid`) to pull it by.
pub(crate) fn outbox_entries(messages: Vec<OutgoingMessage>) -> Vec<Document> {
    messages
        .into_iter()
        .map(|message| {
            let headers: Document = message
                .headers
                .into_iter()
                .map(|(name, value)| (name, Bson::String(value)))
                .collect();
            doc! {
                "eid": ObjectId::new(),
                "subject": message.subject,
                "payload": Binary { subtype: BinarySubtype::Generic, bytes: message.payload.to_vec() },
                "headers": headers,
                "message_id": message.message_id.map_or(Bson::Null, Bson::String),
            }
        })
        .collect()
}

fn outbox_message(entry: &Document) -> Result<(ObjectId, OutgoingMessage), StoreError> {
    let bad = |e: mongodb::bson::document::ValueAccessError| corrupt("outbox event", e);
    let eid = entry.get_object_id("eid").map_err(bad)?;
    let payload = entry.get_binary_generic("payload").map_err(bad)?.clone();
    let mut message = OutgoingMessage::new(entry.get_str("subject").map_err(bad)?, payload);
    if let Ok(headers) = entry.get_document("headers") {
        for (name, value) in headers {
            if let Bson::String(value) = value {
                message.headers.insert(name.clone(), value.clone());
            }
        }
    }
    if let Ok(id) = entry.get_str("message_id") {
        message.message_id = Some(id.to_owned());
    }
    Ok((eid, message))
}

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
    replicas: Collection<Document>,
    start: ReplicaStart,
    record: PhantomData<fn() -> R>,
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

/// The outbox of a MongoDB database: events wait in the `outbox` array of the document whose
/// change they announce (one single-document write covers state and events, no replica set
/// needed); the relay pulls them after publishing. The events of one document keep their order
/// in the array. [`changed`](Outbox::changed) completes on a write in this process; writes of
/// other processes are seen by the relay's poll. The lease is a document of `outbox_lease`,
/// timed by this process's clock.
#[derive(Debug, Clone)]
pub struct MongoOutbox {
    db: mongodb::Database,
    /// The collections drained, with the entity their keys are named by.
    collections: Arc<Vec<(String, String)>>,
    wake: Arc<Notify>,
    /// Where the events of the last `pending` call live, by the ids handed out.
    read: Arc<Mutex<ReadEvents>>,
}

#[derive(Debug, Default)]
struct ReadEvents {
    next: OutboxId,
    located: HashMap<OutboxId, (usize, Bson, ObjectId)>,
}

#[async_trait]
impl Outbox for MongoOutbox {
    async fn pending(&self, limit: usize) -> Result<Vec<OutboxEvent>, StoreError> {
        let mut found = Vec::new();
        for (index, (collection, entity)) in self.collections.iter().enumerate() {
            if found.len() >= limit {
                break;
            }
            let docs: Vec<Document> = self
                .db
                .collection::<Document>(collection)
                .find(doc! {"outbox.eid": {"$exists": true}})
                .projection(doc! {OUTBOX: 1})
                .limit(i64::try_from(limit - found.len()).unwrap_or(i64::MAX))
                .await
                .map_err(backend)?
                .try_collect()
                .await
                .map_err(backend)?;
            for document in docs {
                let doc_id = document
                    .get("_id")
                    .cloned()
                    .ok_or_else(|| corrupt("outbox event", "a document without _id"))?;
                let key = outbox_key(entity, id_text(&doc_id));
                let entries = document
                    .get_array(OUTBOX)
                    .map_err(|e| corrupt("outbox event", e))?;
                for entry in entries {
                    let Bson::Document(entry) = entry else {
                        return Err(corrupt("outbox event", "not a document"));
                    };
                    let (eid, message) = outbox_message(entry)?;
                    found.push((index, doc_id.clone(), eid, key.clone(), message));
                }
            }
        }
        let mut read = self.read.lock().unwrap_or_else(PoisonError::into_inner);
        read.located.clear();
        Ok(found
            .into_iter()
            .map(|(collection, doc_id, eid, key, message)| {
                read.next += 1;
                let id = read.next;
                read.located.insert(id, (collection, doc_id, eid));
                OutboxEvent { id, key, message }
            })
            .collect())
    }

    async fn remove(&self, ids: &[OutboxId]) -> Result<(), StoreError> {
        let mut by_document: Vec<((usize, Bson), Vec<ObjectId>)> = Vec::new();
        {
            let read = self.read.lock().unwrap_or_else(PoisonError::into_inner);
            for id in ids {
                if let Some((collection, doc_id, eid)) = read.located.get(id) {
                    let place = (*collection, doc_id.clone());
                    match by_document.iter_mut().find(|(at, _)| *at == place) {
                        Some((_, eids)) => eids.push(*eid),
                        None => by_document.push((place, vec![*eid])),
                    }
                }
            }
        }
        for ((collection, doc_id), eids) in by_document {
            self.db
                .collection::<Document>(&self.collections[collection].0)
                .update_one(
                    doc! {"_id": doc_id},
                    doc! {"$pull": {OUTBOX: {"eid": {"$in": eids}}}},
                )
                .await
                .map_err(backend)?;
        }
        Ok(())
    }

    async fn changed(&self) {
        self.wake.notified().await;
    }

    async fn lease(&self, holder: &str, ttl: Duration) -> Result<bool, StoreError> {
        let now = Utc::now();
        let until = now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX);
        let result = self
            .db
            .collection::<Document>("outbox_lease")
            .update_one(
                doc! {"_id": "relay", "$or": [{"holder": holder}, {"expires_at": {"$lt": millis(now)}}]},
                doc! {"$set": {"holder": holder, "expires_at": millis(until)}},
            )
            .upsert(true)
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if duplicate_key(&e).is_some() => Ok(false),
            Err(e) => Err(backend(e)),
        }
    }
}
