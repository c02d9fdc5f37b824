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
    MongoTicketReplicaStore, MongoTicketStore, MongoTypedReplicaStore, MongoUserStore,
    TypedDocument,
};

mod outbox;
mod replica;
pub use outbox::MongoOutbox;
pub(crate) use outbox::outbox_entries;
pub use replica::MongoReplicaStore;
#[cfg(feature = "ticketing")]
pub(crate) use replica::apply_versioned;

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

/// The documents `find` returns: the query's and the cursor's errors are mapped here once for
/// every store.
pub(crate) async fn documents(
    find: mongodb::action::Find<'_, Document>,
) -> Result<Vec<Document>, StoreError> {
    find.await
        .map_err(backend)?
        .try_collect()
        .await
        .map_err(backend)
}

/// The documents `find` returns, each decoded by `decode` (the role stores' reads).
#[cfg(feature = "ticketing")]
pub(crate) async fn all<T>(
    find: mongodb::action::Find<'_, Document>,
    decode: impl Fn(&Document) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    documents(find).await?.iter().map(decode).collect()
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

    /// Creates (idempotently) the sparse index by which a relay finds the pending events of
    /// `collection`'s documents.
    pub(crate) async fn index_outbox(&self, collection: &str) -> Result<(), StoreError> {
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
        Ok(())
    }

    /// The outbox of the documents of `collections`: what [`insert_announcing`](Self::insert_announcing)
    /// and [`update_announcing`](Self::update_announcing) left pending there, for a relay.
    /// Creates the index the relay reads by (idempotent).
    pub async fn outbox_for(&self, collections: &[&str]) -> Result<MongoOutbox, StoreError> {
        for collection in collections {
            self.index_outbox(collection).await?;
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
