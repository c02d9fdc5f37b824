//! The outbox in MongoDB: pending events inside the documents they belong to, `MongoOutbox` for the relay.

#[allow(clippy::wildcard_imports)]
use super::*;

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

pub(super) fn outbox_message(entry: &Document) -> Result<(ObjectId, OutgoingMessage), StoreError> {
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

/// The outbox of a MongoDB database: events wait in the `outbox` array of the document whose
/// change they announce (one single-document write covers state and events, no replica set
/// needed); the relay pulls them after publishing. The events of one document keep their order
/// in the array. [`changed`](Outbox::changed) completes on a write in this process; a relay
/// standing by in another process passes its process's writes on to the lease holder as a bus
/// signal (the relay's poll is the fallback). The lease is a document of `outbox_lease`,
/// timed by this process's clock.
#[derive(Debug, Clone)]
pub struct MongoOutbox {
    pub(super) db: mongodb::Database,
    /// The collections drained, with the entity their keys are named by.
    pub(super) collections: Arc<Vec<(String, String)>>,
    pub(super) wake: Arc<Notify>,
    /// Where the events of the last `pending` call live, by the ids handed out.
    pub(super) read: Arc<Mutex<ReadEvents>>,
}

#[derive(Debug, Default)]
pub(super) struct ReadEvents {
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
            let events = self.db.collection::<Document>(collection);
            let find = events.find(doc! {"outbox.eid": {"$exists": true}});
            let limit = i64::try_from(limit - found.len()).unwrap_or(i64::MAX);
            let docs = documents(find.projection(doc! {OUTBOX: 1}).limit(limit)).await?;
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
