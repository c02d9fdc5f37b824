//! The ticketing system's typed replica collections: one store generic over the record, on the
//! backend's one versioned-write helper.

use std::marker::PhantomData;

#[allow(clippy::wildcard_imports)]
use super::*;

/// A replica record of the ticketing system kept as a typed document (`_id` an ObjectId, its
/// fields, `version`): how a document decodes and which fields a write sets.
pub trait TypedDocument: ticketing_core::Replica<Id = Id> {
    /// What the record is called in errors.
    const NAME: &'static str;
    /// The record of a document.
    fn decode(doc: &Document) -> Result<Self, StoreError>;
    /// The fields a write sets, besides `_id` and `version`.
    fn fields(&self) -> Document;
}

/// Replicas of `R` in its collection.
#[derive(Debug)]
pub struct MongoTypedReplicaStore<R> {
    pub(super) replicas: Collection<Document>,
    record: PhantomData<fn() -> R>,
}

impl<R> Clone for MongoTypedReplicaStore<R> {
    fn clone(&self) -> Self {
        MongoTypedReplicaStore::new(self.replicas.clone())
    }
}

impl<R> MongoTypedReplicaStore<R> {
    pub(super) fn new(replicas: Collection<Document>) -> Self {
        MongoTypedReplicaStore {
            replicas,
            record: PhantomData,
        }
    }
}

#[async_trait]
impl<R: TypedDocument> ReplicaStore<R> for MongoTypedReplicaStore<R> {
    async fn find(&self, id: &Id) -> Result<Option<R>, StoreError> {
        find_by_id(&self.replicas, *id, R::decode).await
    }

    async fn apply(&self, record: &R) -> Result<(), StoreError> {
        apply_versioned(
            &self.replicas,
            R::NAME,
            Bson::ObjectId(oid(*record.id())),
            record.version(),
            ReplicaStart::FromFirst,
            record.fields(),
        )
        .await
    }
}

/// `fields` with `version` set: a whole replica record's `$set`.
pub(super) fn versioned(mut fields: Document, version: Version) -> Result<Document, StoreError> {
    fields.insert("version", db_version(version)?);
    Ok(fields)
}

/// The replica of orders in MongoDB.
pub type MongoOrderReplicaStore = MongoTypedReplicaStore<OrderReplica>;

impl TypedDocument for OrderReplica {
    const NAME: &'static str = "order replica";

    fn decode(doc: &Document) -> Result<Self, StoreError> {
        let f = fields(doc, Self::NAME);
        Ok(OrderReplica {
            id: f.id("_id")?,
            ticket_id: f.id("ticket_id")?,
            status: f.status("status")?,
            version: f.number("version")?,
        })
    }

    fn fields(&self) -> Document {
        doc! {"ticket_id": oid(self.ticket_id), "status": self.status.as_str()}
    }
}

/// The payments service's replica of orders in MongoDB.
pub type MongoPayableOrderStore = MongoTypedReplicaStore<PayableOrder>;

impl TypedDocument for PayableOrder {
    const NAME: &'static str = "order";

    fn decode(doc: &Document) -> Result<Self, StoreError> {
        let f = fields(doc, Self::NAME);
        Ok(PayableOrder {
            id: f.id("_id")?,
            user_id: f.id("user_id")?,
            price: f.price("price_cents")?,
            status: f.status("status")?,
            version: f.number("version")?,
        })
    }

    fn fields(&self) -> Document {
        doc! {
            "user_id": oid(self.user_id),
            "price_cents": cents(self.price),
            "status": self.status.as_str(),
        }
    }
}

/// The replica of tickets in MongoDB.
pub type MongoTicketReplicaStore = MongoTypedReplicaStore<TicketReplica>;

impl TypedDocument for TicketReplica {
    const NAME: &'static str = "ticket replica";

    fn decode(doc: &Document) -> Result<Self, StoreError> {
        let f = fields(doc, Self::NAME);
        Ok(TicketReplica {
            id: f.id("_id")?,
            title: f.text("title")?,
            price: f.price("price_cents")?,
            version: f.number("version")?,
        })
    }

    fn fields(&self) -> Document {
        doc! {"title": &self.title, "price_cents": cents(self.price)}
    }
}

impl MongoTypedReplicaStore<TicketReplica> {
    pub(super) async fn find_many(
        &self,
        ids: Vec<ObjectId>,
    ) -> Result<HashMap<Id, TicketReplica>, StoreError> {
        let find = self.replicas.find(doc! {"_id": {"$in": ids}});
        let replicas = all(find, TicketReplica::decode).await?;
        Ok(replicas.into_iter().map(|t| (t.id, t)).collect())
    }
}
