//! The ticketing system's stores in MongoDB (feature `ticketing`): their indexes come from
//! [`MongoDatabase::create_indexes`].
//!
//! Ids are object ids (the same 12 bytes as the API's 24-hex ids), prices `Int64` cents,
//! timestamps BSON dates (milliseconds). Owned records are updated with `findOneAndUpdate` on
//! `{_id, version}`; emails are unique through a unique index on their lowercase form; the
//! one-active-order-per-ticket rule is a unique index on `ticket_id` restricted to active
//! orders (`partialFilterExpression: {active: true}`), so a reservation is one atomic insert and
//! needs no multi-document transaction.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mongodb::bson::oid::ObjectId;
use mongodb::bson::{Bson, Document, doc};
use mongodb::options::{IndexOptions, ReturnDocument};
use mongodb::{Collection, IndexModel};
use tokio::sync::Notify;

use super::{
    MongoDatabase, MongoOutbox, OUTBOX, all, apply_versioned, backend, corrupt, db_version,
    duplicate_key, millis, outbox_entries,
};
use ticketing_core::ticketing::Price;
use ticketing_core::ticketing::payment::{
    Outcome, PayableOrder, Payment, PaymentStatus, PaymentStore,
};
use ticketing_core::ticketing::reservation::OrderStatus;
use ticketing_core::ticketing::store::{
    Announce, FailureCount, FailureLimit, NewOrder, Order, OrderReplica, OrderStore, ReplicaStore,
    ReservationError, StoreError, Ticket, TicketReplica, TicketStore, User, UserStore,
    latest_refusal,
};
use ticketing_core::version::ReplicaStart;
use ticketing_core::{Id, OutgoingMessage, Version};

mod orders;
mod payments;
mod replicas;
mod tickets;
mod users;
pub use orders::MongoOrderStore;
pub use payments::MongoPaymentStore;
use replicas::versioned;
pub use replicas::{
    MongoOrderReplicaStore, MongoPayableOrderStore, MongoTicketReplicaStore,
    MongoTypedReplicaStore, TypedDocument,
};
pub use tickets::MongoTicketStore;
pub use users::MongoUserStore;

const EMAIL_INDEX: &str = "email_lower_unique";
const ACTIVE_ORDER_INDEX: &str = "one_active_order_per_ticket";
/// The collections whose documents carry pending events, and the entity of each.
const OWNED: [(&str, &str); 3] = [
    ("tickets", "ticket"),
    ("orders", "order"),
    ("payments", "payment"),
];

/// The unique index keeping one open (pending or succeeded) payment per order.
const OPEN_PAYMENT_INDEX: &str = "payments_one_open_per_order";

fn oid(id: Id) -> ObjectId {
    ObjectId::from_bytes(id.bytes())
}

fn id_from(value: ObjectId) -> Id {
    Id::from_bytes(value.bytes())
}

fn cents(price: Price) -> i64 {
    // At most 100,000,000 cents: always fits.
    price.cents() as i64
}

/// Typed reads of a stored document.
struct Fields<'a> {
    doc: &'a Document,
    entity: &'static str,
}

impl<'a> Fields<'a> {
    fn id(&self, key: &str) -> Result<Id, StoreError> {
        self.doc
            .get_object_id(key)
            .map(id_from)
            .map_err(|e| corrupt(self.entity, e))
    }

    fn optional_id(&self, key: &str) -> Result<Option<Id>, StoreError> {
        match self.doc.get(key) {
            None | Some(Bson::Null) => Ok(None),
            Some(Bson::ObjectId(value)) => Ok(Some(id_from(*value))),
            Some(other) => Err(corrupt(self.entity, format!("{key} is {other}"))),
        }
    }

    fn text(&self, key: &str) -> Result<String, StoreError> {
        self.doc
            .get_str(key)
            .map(str::to_owned)
            .map_err(|e| corrupt(self.entity, e))
    }

    fn number(&self, key: &str) -> Result<u64, StoreError> {
        let value = match self.doc.get(key) {
            Some(Bson::Int64(v)) => *v,
            Some(Bson::Int32(v)) => i64::from(*v),
            other => return Err(corrupt(self.entity, format!("{key} is {other:?}"))),
        };
        u64::try_from(value).map_err(|e| corrupt(self.entity, e))
    }

    fn price(&self, key: &str) -> Result<Price, StoreError> {
        Price::from_cents(self.number(key)?).map_err(|e| corrupt(self.entity, e))
    }

    fn status(&self, key: &str) -> Result<OrderStatus, StoreError> {
        self.text(key)?.parse().map_err(|e| corrupt(self.entity, e))
    }

    fn time(&self, key: &str) -> Result<DateTime<Utc>, StoreError> {
        let value = self
            .doc
            .get_datetime(key)
            .map_err(|e| corrupt(self.entity, e))?;
        DateTime::from_timestamp_millis(value.timestamp_millis())
            .ok_or_else(|| corrupt(self.entity, format!("{key} out of range")))
    }
}

fn fields<'a>(doc: &'a Document, entity: &'static str) -> Fields<'a> {
    Fields { doc, entity }
}

impl MongoDatabase {
    /// Creates the indexes the contract relies on (idempotent).
    pub async fn create_indexes(&self) -> Result<(), StoreError> {
        let unique = |name: &str| {
            IndexOptions::builder()
                .unique(true)
                .name(name.to_owned())
                .build()
        };
        self.db
            .collection::<Document>("users")
            .create_index(
                IndexModel::builder()
                    .keys(doc! {"email_lower": 1})
                    .options(unique(EMAIL_INDEX))
                    .build(),
            )
            .await
            .map_err(backend)?;
        let orders = self.db.collection::<Document>("orders");
        orders
            .create_index(
                IndexModel::builder()
                    .keys(doc! {"ticket_id": 1})
                    .options(
                        IndexOptions::builder()
                            .unique(true)
                            .name(ACTIVE_ORDER_INDEX.to_owned())
                            .partial_filter_expression(doc! {"active": true})
                            .build(),
                    )
                    .build(),
            )
            .await
            .map_err(backend)?;
        orders
            .create_index(
                IndexModel::builder()
                    .keys(doc! {"user_id": 1, "created_at": 1, "_id": 1})
                    .build(),
            )
            .await
            .map_err(backend)?;
        self.db
            .collection::<Document>("tickets")
            .create_index(
                IndexModel::builder()
                    .keys(doc! {"order_id": 1, "created_at": 1, "_id": 1})
                    .build(),
            )
            .await
            .map_err(backend)?;
        let payments = self.db.collection::<Document>("payments");
        payments
            .create_index(
                IndexModel::builder()
                    .keys(doc! {"order_id": 1})
                    .options(
                        IndexOptions::builder()
                            .unique(true)
                            .name(OPEN_PAYMENT_INDEX.to_owned())
                            .partial_filter_expression(doc! {"open": true})
                            .build(),
                    )
                    .build(),
            )
            .await
            .map_err(backend)?;
        payments
            .create_index(
                IndexModel::builder()
                    .keys(doc! {"status": 1, "seq": 1})
                    .build(),
            )
            .await
            .map_err(backend)?;
        for (owned, _) in OWNED {
            self.index_outbox(owned).await?;
        }
        Ok(())
    }

    /// Users.
    pub fn users(&self) -> MongoUserStore {
        MongoUserStore {
            users: self.db.collection("users"),
            failures: self.db.collection("sign_in_failures"),
        }
    }

    /// Tickets (tickets service).
    pub fn tickets(&self) -> MongoTicketStore {
        MongoTicketStore {
            tickets: self.db.collection("tickets"),
            order_replicas: self.order_replicas(),
            wake: self.wake.clone(),
        }
    }

    /// Payments (payments service).
    pub fn payments(&self) -> MongoPaymentStore {
        MongoPaymentStore {
            payments: self.db.collection("payments"),
            wake: self.wake.clone(),
        }
    }

    /// The replica of orders (payments service).
    pub fn payable_orders(&self) -> MongoPayableOrderStore {
        MongoPayableOrderStore::new(self.db.collection("payable_orders"))
    }

    /// The replica of orders (tickets service).
    pub fn order_replicas(&self) -> MongoOrderReplicaStore {
        MongoOrderReplicaStore::new(self.db.collection("order_replicas"))
    }

    /// The replica of tickets (orders service).
    pub fn ticket_replicas(&self) -> MongoTicketReplicaStore {
        MongoTicketReplicaStore::new(self.db.collection("ticket_replicas"))
    }

    /// Orders (orders service).
    pub fn orders(&self) -> MongoOrderStore {
        MongoOrderStore {
            orders: self.db.collection("orders"),
            tickets: self.ticket_replicas(),
            wake: self.wake.clone(),
        }
    }

    /// The outbox of the ticketing stores: the events pending in the tickets', orders' and
    /// payments' own documents.
    pub fn outbox(&self) -> MongoOutbox {
        self.outbox_of(&OWNED)
    }
}

/// The document with this id, decoded.
async fn find_by_id<T>(
    collection: &Collection<Document>,
    id: Id,
    decode: fn(&Document) -> Result<T, StoreError>,
) -> Result<Option<T>, StoreError> {
    collection
        .find_one(doc! {"_id": oid(id)})
        .await
        .map_err(backend)?
        .as_ref()
        .map(decode)
        .transpose()
}
