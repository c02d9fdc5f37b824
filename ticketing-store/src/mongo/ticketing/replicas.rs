//! The ticketing system's typed replica collections, on the backend's one versioned-write helper.

#[allow(clippy::wildcard_imports)]
use super::*;

/// The replica of orders in MongoDB.
#[derive(Debug, Clone)]
pub struct MongoOrderReplicaStore {
    pub(super) replicas: Collection<Document>,
}

fn order_replica_of(doc: &Document) -> Result<OrderReplica, StoreError> {
    let f = fields(doc, "order replica");
    Ok(OrderReplica {
        id: f.id("_id")?,
        ticket_id: f.id("ticket_id")?,
        status: f.status("status")?,
        version: f.number("version")?,
    })
}

#[async_trait]
impl ReplicaStore<OrderReplica> for MongoOrderReplicaStore {
    async fn find(&self, id: &Id) -> Result<Option<OrderReplica>, StoreError> {
        let id = *id;
        find_by_id(&self.replicas, id, order_replica_of).await
    }

    async fn apply(&self, order: &OrderReplica) -> Result<(), StoreError> {
        let set = doc! {"ticket_id": oid(order.ticket_id), "status": order.status.as_str()};
        apply_versioned(
            &self.replicas,
            "order replica",
            Bson::ObjectId(oid(order.id)),
            order.version,
            ReplicaStart::FromFirst,
            set,
        )
        .await
    }
}

/// The payments service's replica of orders in MongoDB.
#[derive(Debug, Clone)]
pub struct MongoPayableOrderStore {
    pub(super) replicas: Collection<Document>,
}

fn payable_order_of(doc: &Document) -> Result<PayableOrder, StoreError> {
    let f = fields(doc, "order");
    Ok(PayableOrder {
        id: f.id("_id")?,
        user_id: f.id("user_id")?,
        price: f.price("price_cents")?,
        status: f.status("status")?,
        version: f.number("version")?,
    })
}

#[async_trait]
impl ReplicaStore<PayableOrder> for MongoPayableOrderStore {
    async fn find(&self, id: &Id) -> Result<Option<PayableOrder>, StoreError> {
        let id = *id;
        find_by_id(&self.replicas, id, payable_order_of).await
    }

    async fn apply(&self, order: &PayableOrder) -> Result<(), StoreError> {
        let set = doc! {
            "user_id": oid(order.user_id),
            "price_cents": cents(order.price),
            "status": order.status.as_str(),
        };
        apply_versioned(
            &self.replicas,
            "order",
            Bson::ObjectId(oid(order.id)),
            order.version,
            ReplicaStart::FromFirst,
            set,
        )
        .await
    }
}

/// The replica of tickets in MongoDB.
#[derive(Debug, Clone)]
pub struct MongoTicketReplicaStore {
    pub(super) replicas: Collection<Document>,
}

fn ticket_replica_of(doc: &Document) -> Result<TicketReplica, StoreError> {
    let f = fields(doc, "ticket replica");
    Ok(TicketReplica {
        id: f.id("_id")?,
        title: f.text("title")?,
        price: f.price("price_cents")?,
        version: f.number("version")?,
    })
}

impl MongoTicketReplicaStore {
    pub(super) async fn find_many(
        &self,
        ids: Vec<ObjectId>,
    ) -> Result<HashMap<Id, TicketReplica>, StoreError> {
        let docs: Vec<Document> = self
            .replicas
            .find(doc! {"_id": {"$in": ids}})
            .await
            .map_err(backend)?
            .try_collect()
            .await
            .map_err(backend)?;
        docs.iter()
            .map(|d| ticket_replica_of(d).map(|t| (t.id, t)))
            .collect()
    }
}

#[async_trait]
impl ReplicaStore<TicketReplica> for MongoTicketReplicaStore {
    async fn find(&self, id: &Id) -> Result<Option<TicketReplica>, StoreError> {
        let id = *id;
        find_by_id(&self.replicas, id, ticket_replica_of).await
    }

    async fn apply(&self, ticket: &TicketReplica) -> Result<(), StoreError> {
        let set = doc! {"title": &ticket.title, "price_cents": cents(ticket.price)};
        apply_versioned(
            &self.replicas,
            "ticket replica",
            Bson::ObjectId(oid(ticket.id)),
            ticket.version,
            ReplicaStart::FromFirst,
            set,
        )
        .await
    }
}
