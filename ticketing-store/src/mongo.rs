//! MongoDB stores, on the official driver.
//!
//! [`MongoDatabase::connect`] opens a client on one database and creates the indexes the
//! contract relies on, then hands out one store per role:
//!
//! ```no_run
//! # async fn demo() -> Result<(), ticketing_core::StoreError> {
//! use ticketing_store::mongo::MongoDatabase;
//!
//! let db = MongoDatabase::connect("mongodb://127.0.0.1:27017", "tickets").await?;
//! let tickets = db.tickets(); // MongoTicketStore
//! # Ok(()) }
//! ```
//!
//! Ids are object ids (the same 12 bytes as the API's 24-hex ids), prices `Int64` cents,
//! timestamps BSON dates (milliseconds). Owned records are updated with `findOneAndUpdate` on
//! `{_id, version}`; emails are unique through a unique index on their lowercase form; the
//! one-active-order-per-ticket rule is a unique index on `ticket_id` restricted to active
//! orders (`partialFilterExpression: {active: true}`), so a reservation is one atomic insert and
//! needs no multi-document transaction.

use std::collections::HashMap;
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
use tokio::sync::Notify;

use ticketing_core::outbox::{Outbox, OutboxEvent, OutboxId};
use ticketing_core::payment::{
    Outcome, PayableOrder, PayableOrderStore, Payment, PaymentStatus, PaymentStore,
};
use ticketing_core::reservation::OrderStatus;
use ticketing_core::store::{
    Announce, NewOrder, Order, OrderReplica, OrderReplicaStore, OrderStore, StoreError, Ticket,
    TicketReplica, TicketReplicaStore, TicketStore, User, UserStore, outbox_key,
};
use ticketing_core::{Id, OutgoingMessage, Price, Version};

const BACKEND: &str = "mongo";
const EMAIL_INDEX: &str = "email_lower_unique";
const ACTIVE_ORDER_INDEX: &str = "one_active_order_per_ticket";
/// The array of pending events inside an owned record's document.
const OUTBOX: &str = "outbox";
/// The collections whose documents carry pending events.
const OWNED: [&str; 3] = ["tickets", "orders", "payments"];

/// The unique index keeping one open (pending or succeeded) payment per order.
const OPEN_PAYMENT_INDEX: &str = "payments_one_open_per_order";

fn backend(error: impl Into<ticketing_core::bus::BoxError>) -> StoreError {
    StoreError::backend(BACKEND, error)
}

fn corrupt(entity: &'static str, reason: impl ToString) -> StoreError {
    StoreError::Corrupt {
        entity,
        reason: reason.to_string(),
    }
}

/// If the error is a duplicate key (code 11000), the message naming the index.
fn duplicate_key(error: &mongodb::error::Error) -> Option<&str> {
    match &*error.kind {
        ErrorKind::Write(WriteFailure::WriteError(e)) if e.code == 11000 => Some(&e.message),
        ErrorKind::Command(e) if e.code == 11000 => Some(&e.message),
        _ => None,
    }
}

fn oid(id: Id) -> ObjectId {
    ObjectId::from_bytes(id.bytes())
}

fn id_from(value: ObjectId) -> Id {
    Id::from_bytes(value.bytes())
}

fn db_version(version: Version) -> Result<i64, StoreError> {
    i64::try_from(version).map_err(|e| corrupt("version", e))
}

fn cents(price: Price) -> i64 {
    // At most 100,000,000 cents: always fits.
    price.cents() as i64
}

fn millis(time: DateTime<Utc>) -> mongodb::bson::DateTime {
    mongodb::bson::DateTime::from_millis(time.timestamp_millis())
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

/// A MongoDB database with the stores' indexes.
#[derive(Debug, Clone)]
pub struct MongoDatabase {
    db: mongodb::Database,
    wake: Arc<Notify>,
}

impl MongoDatabase {
    /// A round trip: the `ping` command.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.db
            .run_command(doc! {"ping": 1})
            .await
            .map(|_| ())
            .map_err(backend)
    }

    /// Connects to `uri`, uses `database` and creates the indexes.
    pub async fn connect(uri: &str, database: &str) -> Result<Self, StoreError> {
        let client = mongodb::Client::with_uri_str(uri)
            .await
            .map_err(|e| backend(format!("cannot connect to MongoDB: {e}")))?;
        let db = MongoDatabase::from_database(client.database(database));
        db.create_indexes().await?;
        Ok(db)
    }

    /// Connects to `uri` and uses the database it names, or `fallback` if it names none.
    pub async fn connect_default(uri: &str, fallback: &str) -> Result<Self, StoreError> {
        let options = mongodb::options::ClientOptions::parse(uri)
            .await
            .map_err(|e| backend(format!("invalid MongoDB URI: {e}")))?;
        let database = options
            .default_database
            .clone()
            .unwrap_or_else(|| fallback.to_owned());
        let client = mongodb::Client::with_options(options).map_err(backend)?;
        let db = MongoDatabase::from_database(client.database(&database));
        db.create_indexes().await?;
        Ok(db)
    }

    /// Uses a database handle; call [`create_indexes`](Self::create_indexes) once.
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
        for owned in OWNED {
            self.db
                .collection::<Document>(owned)
                .create_index(
                    IndexModel::builder()
                        .keys(doc! {"outbox.eid": 1})
                        .options(IndexOptions::builder().sparse(true).build())
                        .build(),
                )
                .await
                .map_err(backend)?;
        }
        Ok(())
    }

    fn collection(&self, name: &str) -> Collection<Document> {
        self.db.collection(name)
    }

    /// Users.
    pub fn users(&self) -> MongoUserStore {
        MongoUserStore {
            users: self.collection("users"),
        }
    }

    /// Tickets (tickets service).
    pub fn tickets(&self) -> MongoTicketStore {
        MongoTicketStore {
            tickets: self.collection("tickets"),
            order_replicas: self.order_replicas(),
            wake: self.wake.clone(),
        }
    }

    /// Payments (payments service).
    pub fn payments(&self) -> MongoPaymentStore {
        MongoPaymentStore {
            payments: self.collection("payments"),
            wake: self.wake.clone(),
        }
    }

    /// The replica of orders (payments service).
    pub fn payable_orders(&self) -> MongoPayableOrderStore {
        MongoPayableOrderStore {
            replicas: self.collection("payable_orders"),
        }
    }

    /// The replica of orders (tickets service).
    pub fn order_replicas(&self) -> MongoOrderReplicaStore {
        MongoOrderReplicaStore {
            replicas: self.collection("order_replicas"),
        }
    }

    /// The replica of tickets (orders service).
    pub fn ticket_replicas(&self) -> MongoTicketReplicaStore {
        MongoTicketReplicaStore {
            replicas: self.collection("ticket_replicas"),
        }
    }

    /// Orders (orders service).
    pub fn orders(&self) -> MongoOrderStore {
        MongoOrderStore {
            orders: self.collection("orders"),
            tickets: self.ticket_replicas(),
            wake: self.wake.clone(),
        }
    }

    /// The outbox: the events pending in the tickets' and orders' own documents.
    pub fn outbox(&self) -> MongoOutbox {
        MongoOutbox {
            db: self.db.clone(),
            wake: self.wake.clone(),
            read: Arc::default(),
        }
    }
}

/// The BSON of pending events, each with an id of its own (`eid`) to pull it by.
fn outbox_entries(messages: Vec<OutgoingMessage>) -> Vec<Document> {
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
    let f = fields(entry, "outbox event");
    let eid = entry
        .get_object_id("eid")
        .map_err(|e| corrupt("outbox event", e))?;
    let payload = entry
        .get_binary_generic("payload")
        .map_err(|e| corrupt("outbox event", e))?
        .clone();
    let mut message = OutgoingMessage::new(f.text("subject")?, payload);
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

/// Users in MongoDB.
#[derive(Debug, Clone)]
pub struct MongoUserStore {
    users: Collection<Document>,
}

fn user_of(doc: &Document) -> Result<User, StoreError> {
    let f = fields(doc, "user");
    Ok(User {
        id: f.id("_id")?,
        email: f.text("email")?,
        password_hash: f.text("password_hash")?,
    })
}

#[async_trait]
impl UserStore for MongoUserStore {
    async fn create(&self, user: User) -> Result<User, StoreError> {
        let document = doc! {
            "_id": oid(user.id),
            "email": &user.email,
            "email_lower": user.email.to_lowercase(),
            "password_hash": &user.password_hash,
        };
        match self.users.insert_one(document).await {
            Ok(_) => Ok(user),
            Err(e) => Err(match duplicate_key(&e) {
                Some(message) if message.contains(EMAIL_INDEX) => StoreError::AlreadyExists {
                    entity: "user",
                    key: user.email,
                },
                Some(_) => StoreError::AlreadyExists {
                    entity: "user",
                    key: user.id.to_string(),
                },
                None => backend(e),
            }),
        }
    }

    async fn find_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        self.users
            .find_one(doc! {"email_lower": email.to_lowercase()})
            .await
            .map_err(backend)?
            .as_ref()
            .map(user_of)
            .transpose()
    }

    async fn get(&self, id: Id) -> Result<User, StoreError> {
        find_by_id(&self.users, id, user_of)
            .await?
            .ok_or_else(|| StoreError::not_found("user", id))
    }
}

/// Tickets in MongoDB; their pending events live in each ticket's document.
#[derive(Debug, Clone)]
pub struct MongoTicketStore {
    tickets: Collection<Document>,
    order_replicas: MongoOrderReplicaStore,
    wake: Arc<Notify>,
}

fn ticket_of(doc: &Document) -> Result<Ticket, StoreError> {
    let f = fields(doc, "ticket");
    Ok(Ticket {
        id: f.id("_id")?,
        title: f.text("title")?,
        price: f.price("price_cents")?,
        user_id: f.id("user_id")?,
        version: f.number("version")?,
        order_id: f.optional_id("order_id")?,
    })
}

fn optional_oid(id: Option<Id>) -> Bson {
    id.map_or(Bson::Null, |id| Bson::ObjectId(oid(id)))
}

#[async_trait]
impl TicketStore for MongoTicketStore {
    async fn create_announcing(
        &self,
        ticket: Ticket,
        announce: Announce<'_, Ticket>,
    ) -> Result<Ticket, StoreError> {
        let created = Ticket {
            version: 0,
            ..ticket
        };
        let events = outbox_entries(announce(&created)?);
        let any = !events.is_empty();
        let document = doc! {
            "_id": oid(created.id),
            "title": &created.title,
            "price_cents": cents(created.price),
            "user_id": oid(created.user_id),
            "version": 0_i64,
            "order_id": optional_oid(created.order_id),
            "created_at": mongodb::bson::DateTime::now(),
            OUTBOX: events,
        };
        match self.tickets.insert_one(document).await {
            Ok(_) => {
                if any {
                    self.wake.notify_one();
                }
                Ok(created)
            }
            Err(e) if duplicate_key(&e).is_some() => Err(StoreError::AlreadyExists {
                entity: "ticket",
                key: created.id.to_string(),
            }),
            Err(e) => Err(backend(e)),
        }
    }

    async fn get(&self, id: Id) -> Result<Ticket, StoreError> {
        find_by_id(&self.tickets, id, ticket_of)
            .await?
            .ok_or_else(|| StoreError::not_found("ticket", id))
    }

    async fn list_unreserved(&self) -> Result<Vec<Ticket>, StoreError> {
        let docs: Vec<Document> = self
            .tickets
            .find(doc! {"order_id": Bson::Null})
            .sort(doc! {"created_at": 1, "_id": 1})
            .await
            .map_err(backend)?
            .try_collect()
            .await
            .map_err(backend)?;
        docs.iter().map(ticket_of).collect()
    }

    async fn list_unreserved_page(
        &self,
        after: Option<Id>,
        limit: usize,
    ) -> Result<Vec<Ticket>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut filter = doc! {"order_id": Bson::Null};
        if let Some(id) = after {
            let oid = oid(id);
            let cursor = self
                .tickets
                .find_one(doc! {"_id": oid})
                .projection(doc! {"created_at": 1})
                .await
                .map_err(backend)?
                .ok_or_else(|| StoreError::not_found("ticket", id))?;
            let created = cursor
                .get("created_at")
                .cloned()
                .ok_or_else(|| corrupt("ticket", "no created_at"))?;
            filter.insert(
                "$or",
                vec![
                    doc! {"created_at": {"$lt": created.clone()}},
                    doc! {"created_at": created, "_id": {"$lt": oid}},
                ],
            );
        }
        let docs: Vec<Document> = self
            .tickets
            .find(filter)
            .sort(doc! {"created_at": -1, "_id": -1})
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .await
            .map_err(backend)?
            .try_collect()
            .await
            .map_err(backend)?;
        docs.iter().map(ticket_of).collect()
    }

    async fn update_announcing(
        &self,
        ticket: &Ticket,
        announce: Announce<'_, Ticket>,
    ) -> Result<Ticket, StoreError> {
        // The stored ticket after the update is known before it: announce that.
        let next = Ticket {
            version: ticket.version + 1,
            ..ticket.clone()
        };
        let events = outbox_entries(announce(&next)?);
        let any = !events.is_empty();
        let updated = self
            .tickets
            .find_one_and_update(
                doc! {"_id": oid(ticket.id), "version": db_version(ticket.version)?},
                doc! {
                    "$set": {
                        "title": &ticket.title,
                        "price_cents": cents(ticket.price),
                        "order_id": optional_oid(ticket.order_id),
                    },
                    "$inc": {"version": 1_i64},
                    "$push": {OUTBOX: {"$each": events}},
                },
            )
            .return_document(ReturnDocument::After)
            .await
            .map_err(backend)?;
        match updated {
            Some(doc) => {
                if any {
                    self.wake.notify_one();
                }
                ticket_of(&doc)
            }
            None => {
                let exists = self
                    .tickets
                    .find_one(doc! {"_id": oid(ticket.id)})
                    .await
                    .map_err(backend)?;
                Err(match exists {
                    Some(_) => StoreError::VersionConflict {
                        entity: "ticket",
                        id: ticket.id,
                        expected: ticket.version,
                    },
                    None => StoreError::not_found("ticket", ticket.id),
                })
            }
        }
    }

    async fn update_for_order(
        &self,
        ticket: &Ticket,
        order: &OrderReplica,
        announce: Announce<'_, Ticket>,
    ) -> Result<Ticket, StoreError> {
        // The ticket with its events first, the replica last: after a crash in between, the
        // redelivered event is applied again (the listener finds the ticket changed already),
        // never taken for a duplicate.
        let updated = self.update_announcing(ticket, announce).await?;
        self.record_order(order).await?;
        Ok(updated)
    }
}

impl MongoTicketStore {
    /// Records `order` in the order replica unless it holds that version or later: an upsert
    /// on `{_id, version < v}`, whose insert fails on the taken id when a later one is held.
    async fn record_order(&self, order: &OrderReplica) -> Result<(), StoreError> {
        let result = self
            .order_replicas
            .replicas
            .update_one(
                doc! {"_id": oid(order.id), "version": {"$lt": db_version(order.version)?}},
                doc! {"$set": {
                    "ticket_id": oid(order.ticket_id),
                    "status": order.status.as_str(),
                    "version": db_version(order.version)?,
                }},
            )
            .upsert(true)
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if duplicate_key(&e).is_some() => Ok(()),
            Err(e) => Err(backend(e)),
        }
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

/// Applies a replica event: insert at version 0 (a taken id is a conflict), else replace the
/// document at version − 1.
async fn apply_replica(
    collection: &Collection<Document>,
    entity: &'static str,
    id: Id,
    version: Version,
    set: Document,
) -> Result<(), StoreError> {
    let conflict = || StoreError::VersionConflict {
        entity,
        id,
        expected: version.saturating_sub(1),
    };
    if version == 0 {
        let mut document = doc! {"_id": oid(id), "version": 0_i64};
        document.extend(set);
        return match collection.insert_one(document).await {
            Ok(_) => Ok(()),
            Err(e) if duplicate_key(&e).is_some() => Err(conflict()),
            Err(e) => Err(backend(e)),
        };
    }
    let mut set = set;
    set.insert("version", db_version(version)?);
    let result = collection
        .update_one(
            doc! {"_id": oid(id), "version": db_version(version - 1)?},
            doc! {"$set": set},
        )
        .await
        .map_err(backend)?;
    if result.matched_count == 1 {
        Ok(())
    } else {
        Err(conflict())
    }
}

/// The replica of orders in MongoDB.
#[derive(Debug, Clone)]
pub struct MongoOrderReplicaStore {
    replicas: Collection<Document>,
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
impl OrderReplicaStore for MongoOrderReplicaStore {
    async fn find(&self, id: Id) -> Result<Option<OrderReplica>, StoreError> {
        find_by_id(&self.replicas, id, order_replica_of).await
    }

    async fn apply(&self, order: &OrderReplica) -> Result<(), StoreError> {
        let set = doc! {"ticket_id": oid(order.ticket_id), "status": order.status.as_str()};
        apply_replica(
            &self.replicas,
            "order replica",
            order.id,
            order.version,
            set,
        )
        .await
    }
}

/// Payments in MongoDB: a document per attempt; `open` is true while it is pending or
/// succeeded, and a unique index on `order_id` restricted to open attempts keeps one per
/// order. A charge's events go into the payment's own `outbox` array in the same
/// single-document update.
#[derive(Debug, Clone)]
pub struct MongoPaymentStore {
    payments: Collection<Document>,
    wake: Arc<Notify>,
}

fn payment_of(doc: &Document) -> Result<Payment, StoreError> {
    let f = fields(doc, "payment");
    let status = f.text("status")?;
    let optional_text = |key: &str| match doc.get(key) {
        None | Some(Bson::Null) => Ok(None),
        Some(Bson::String(text)) => Ok(Some(text.clone())),
        Some(other) => Err(corrupt("payment", format!("{key} is {other}"))),
    };
    Ok(Payment {
        id: f.id("_id")?,
        order_id: f.id("order_id")?,
        amount: f.price("amount_cents")?,
        status: PaymentStatus::parse(&status)
            .ok_or_else(|| corrupt("payment", format!("status {status:?}")))?,
        source: f.text("source")?,
        idempotency_key: f.text("idempotency_key")?,
        charge_id: optional_text("charge_id")?,
        failure: optional_text("failure")?,
        version: f.number("version")?,
    })
}

impl MongoPaymentStore {
    /// Writes `next` over the payment if it is still at its previous version in `from`;
    /// `VersionConflict` otherwise.
    async fn change(
        &self,
        current: &Payment,
        next: &Payment,
        events: Vec<OutgoingMessage>,
    ) -> Result<(), StoreError> {
        let events = outbox_entries(events);
        let any = !events.is_empty();
        let optional = |value: &Option<String>| value.clone().map_or(Bson::Null, Bson::String);
        self.payments
            .find_one_and_update(
                doc! {
                    "_id": oid(current.id),
                    "version": db_version(current.version)?,
                    "status": current.status.as_str(),
                },
                doc! {
                    "$set": {
                        "status": next.status.as_str(),
                        "open": next.status.holds_order(),
                        "charge_id": optional(&next.charge_id),
                        "failure": optional(&next.failure),
                        "version": db_version(next.version)?,
                    },
                    "$push": {OUTBOX: {"$each": events}},
                },
            )
            .await
            .map_err(backend)?
            .ok_or(StoreError::VersionConflict {
                entity: "payment",
                id: current.id,
                expected: current.version,
            })?;
        if any {
            self.wake.notify_one();
        }
        Ok(())
    }

    async fn in_status(&self, id: Id, from: PaymentStatus) -> Result<Payment, StoreError> {
        let current = self.get(id).await?;
        if current.status != from {
            return Err(StoreError::VersionConflict {
                entity: "payment",
                id,
                expected: current.version,
            });
        }
        Ok(current)
    }

    async fn list(
        &self,
        filter: Document,
        limit: Option<usize>,
    ) -> Result<Vec<Payment>, StoreError> {
        let mut find = self.payments.find(filter).sort(doc! {"seq": 1, "_id": 1});
        if let Some(limit) = limit {
            if limit == 0 {
                return Ok(Vec::new());
            }
            find = find.limit(i64::try_from(limit).unwrap_or(i64::MAX));
        }
        let docs: Vec<Document> = find
            .await
            .map_err(backend)?
            .try_collect()
            .await
            .map_err(backend)?;
        docs.iter().map(payment_of).collect()
    }
}

#[async_trait]
impl PaymentStore for MongoPaymentStore {
    async fn begin(&self, payment: Payment) -> Result<Payment, StoreError> {
        let stored = payment.begun();
        // Insertion order for listings: the id's timestamp and counter, as the process made it.
        let document = doc! {
            "_id": oid(stored.id),
            "order_id": oid(stored.order_id),
            "amount_cents": cents(stored.amount),
            "status": PaymentStatus::Pending.as_str(),
            "open": true,
            "source": &stored.source,
            "idempotency_key": &stored.idempotency_key,
            "charge_id": Bson::Null,
            "failure": Bson::Null,
            "version": 0_i64,
            "seq": mongodb::bson::DateTime::now(),
            OUTBOX: Vec::<Document>::new(),
        };
        match self.payments.insert_one(document).await {
            Ok(_) => Ok(stored),
            Err(e) => Err(match duplicate_key(&e) {
                Some(message) if message.contains(OPEN_PAYMENT_INDEX) => {
                    StoreError::AlreadyExists {
                        entity: "payment",
                        key: stored.order_id.to_string(),
                    }
                }
                Some(_) => StoreError::AlreadyExists {
                    entity: "payment",
                    key: stored.id.to_string(),
                },
                None => backend(e),
            }),
        }
    }

    async fn settle_announcing(
        &self,
        id: Id,
        outcome: Outcome,
        announce: Announce<'_, Payment>,
    ) -> Result<Payment, StoreError> {
        let current = self.in_status(id, PaymentStatus::Pending).await?;
        let next = current.settled(outcome);
        let events = next.announced(announce)?;
        self.change(&current, &next, events).await?;
        Ok(next)
    }

    async fn refund(&self, id: Id) -> Result<Payment, StoreError> {
        let current = self.in_status(id, PaymentStatus::Succeeded).await?;
        let next = current.refunded();
        self.change(&current, &next, Vec::new()).await?;
        Ok(next)
    }

    async fn get(&self, id: Id) -> Result<Payment, StoreError> {
        find_by_id(&self.payments, id, payment_of)
            .await?
            .ok_or_else(|| StoreError::not_found("payment", id))
    }

    async fn for_order(&self, order_id: Id) -> Result<Vec<Payment>, StoreError> {
        self.list(doc! {"order_id": oid(order_id)}, None).await
    }

    async fn pending(&self, limit: usize) -> Result<Vec<Payment>, StoreError> {
        self.list(
            doc! {"status": PaymentStatus::Pending.as_str()},
            Some(limit),
        )
        .await
    }
}

/// The payments service's replica of orders in MongoDB.
#[derive(Debug, Clone)]
pub struct MongoPayableOrderStore {
    replicas: Collection<Document>,
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
impl PayableOrderStore for MongoPayableOrderStore {
    async fn find(&self, id: Id) -> Result<Option<PayableOrder>, StoreError> {
        find_by_id(&self.replicas, id, payable_order_of).await
    }

    async fn apply(&self, order: &PayableOrder) -> Result<(), StoreError> {
        let set = doc! {
            "user_id": oid(order.user_id),
            "price_cents": cents(order.price),
            "status": order.status.as_str(),
        };
        apply_replica(&self.replicas, "order", order.id, order.version, set).await
    }
}

/// The replica of tickets in MongoDB.
#[derive(Debug, Clone)]
pub struct MongoTicketReplicaStore {
    replicas: Collection<Document>,
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
    async fn find_many(
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
impl TicketReplicaStore for MongoTicketReplicaStore {
    async fn find(&self, id: Id) -> Result<Option<TicketReplica>, StoreError> {
        find_by_id(&self.replicas, id, ticket_replica_of).await
    }

    async fn apply(&self, ticket: &TicketReplica) -> Result<(), StoreError> {
        let set = doc! {"title": &ticket.title, "price_cents": cents(ticket.price)};
        apply_replica(
            &self.replicas,
            "ticket replica",
            ticket.id,
            ticket.version,
            set,
        )
        .await
    }
}

/// Orders in MongoDB, joined with the ticket replica.
#[derive(Debug, Clone)]
pub struct MongoOrderStore {
    orders: Collection<Document>,
    tickets: MongoTicketReplicaStore,
    wake: Arc<Notify>,
}

struct OrderDoc {
    id: Id,
    user_id: Id,
    ticket_id: Id,
    status: OrderStatus,
    expires_at: DateTime<Utc>,
    version: Version,
}

fn order_doc_of(doc: &Document) -> Result<OrderDoc, StoreError> {
    let f = fields(doc, "order");
    Ok(OrderDoc {
        id: f.id("_id")?,
        user_id: f.id("user_id")?,
        ticket_id: f.id("ticket_id")?,
        status: f.status("status")?,
        expires_at: f.time("expires_at")?,
        version: f.number("version")?,
    })
}

fn join(order: OrderDoc, ticket: Option<TicketReplica>) -> Result<Order, StoreError> {
    let ticket = ticket.ok_or_else(|| {
        corrupt(
            "order",
            format!(
                "order {} refers to missing ticket {}",
                order.id, order.ticket_id
            ),
        )
    })?;
    Ok(Order {
        id: order.id,
        user_id: order.user_id,
        status: order.status,
        expires_at: order.expires_at,
        version: order.version,
        ticket,
    })
}

impl MongoOrderStore {
    async fn find(&self, id: Id) -> Result<OrderDoc, StoreError> {
        let doc = self
            .orders
            .find_one(doc! {"_id": oid(id)})
            .await
            .map_err(backend)?
            .ok_or_else(|| StoreError::not_found("order", id))?;
        order_doc_of(&doc)
    }

    async fn joined(&self, order: OrderDoc) -> Result<Order, StoreError> {
        let ticket = self.tickets.find(order.ticket_id).await?;
        join(order, ticket)
    }
}

#[async_trait]
impl OrderStore for MongoOrderStore {
    async fn reserve_announcing(
        &self,
        order: NewOrder,
        announce: Announce<'_, Order>,
    ) -> Result<Order, StoreError> {
        // Replicas are never deleted, so this existence check cannot go stale.
        let ticket = self
            .tickets
            .find(order.ticket_id)
            .await?
            .ok_or_else(|| StoreError::not_found("ticket", order.ticket_id))?;
        let created = Order {
            id: order.id,
            user_id: order.user_id,
            status: OrderStatus::Created,
            expires_at: order.expires_at,
            version: 0,
            ticket,
        };
        let events = outbox_entries(announce(&created)?);
        let any = !events.is_empty();
        let document = doc! {
            "_id": oid(order.id),
            "user_id": oid(order.user_id),
            "ticket_id": oid(order.ticket_id),
            "status": OrderStatus::Created.as_str(),
            "active": true,
            "expires_at": millis(order.expires_at),
            "version": 0_i64,
            "created_at": mongodb::bson::DateTime::now(),
            OUTBOX: events,
        };
        match self.orders.insert_one(document).await {
            Ok(_) => {
                if any {
                    self.wake.notify_one();
                }
            }
            Err(e) => {
                return Err(match duplicate_key(&e) {
                    Some(message) if message.contains(ACTIVE_ORDER_INDEX) => {
                        StoreError::TicketReserved {
                            ticket_id: order.ticket_id,
                        }
                    }
                    Some(_) => StoreError::AlreadyExists {
                        entity: "order",
                        key: order.id.to_string(),
                    },
                    None => backend(e),
                });
            }
        }
        Ok(created)
    }

    async fn get(&self, id: Id) -> Result<Order, StoreError> {
        let order = self.find(id).await?;
        self.joined(order).await
    }

    async fn list_for_user(&self, user_id: Id) -> Result<Vec<Order>, StoreError> {
        let docs: Vec<Document> = self
            .orders
            .find(doc! {"user_id": oid(user_id)})
            .sort(doc! {"created_at": 1, "_id": 1})
            .await
            .map_err(backend)?
            .try_collect()
            .await
            .map_err(backend)?;
        let orders = docs
            .iter()
            .map(order_doc_of)
            .collect::<Result<Vec<_>, _>>()?;
        let tickets = self
            .tickets
            .find_many(orders.iter().map(|o| oid(o.ticket_id)).collect())
            .await?;
        orders
            .into_iter()
            .map(|o| {
                let ticket = tickets.get(&o.ticket_id).cloned();
                join(o, ticket)
            })
            .collect()
    }

    async fn set_status_announcing(
        &self,
        id: Id,
        expected_version: Version,
        status: OrderStatus,
        announce: Announce<'_, Order>,
    ) -> Result<Order, StoreError> {
        let current = self.find(id).await?;
        let conflict = || StoreError::VersionConflict {
            entity: "order",
            id,
            expected: expected_version,
        };
        if current.version != expected_version {
            return Err(conflict());
        }
        let next = OrderDoc {
            status: current.status.transition(status)?,
            version: current.version + 1,
            ..current
        };
        let changed = self.joined(next).await?;
        let events = outbox_entries(announce(&changed)?);
        let any = !events.is_empty();
        // The version in the filter makes the read above safe: if the order moved on in
        // between, nothing is written.
        self.orders
            .find_one_and_update(
                doc! {"_id": oid(id), "version": db_version(expected_version)?},
                doc! {
                    "$set": {"status": status.as_str(), "active": status.is_active()},
                    "$inc": {"version": 1_i64},
                    "$push": {OUTBOX: {"$each": events}},
                },
            )
            .await
            .map_err(backend)?
            .ok_or_else(conflict)?;
        if any {
            self.wake.notify_one();
        }
        Ok(changed)
    }

    async fn is_reserved(&self, ticket_id: Id) -> Result<bool, StoreError> {
        Ok(self
            .orders
            .find_one(doc! {"ticket_id": oid(ticket_id), "active": true})
            .await
            .map_err(backend)?
            .is_some())
    }
}

/// The outbox of a MongoDB database: events wait in the `outbox` array of the ticket or order
/// document whose change they announce (one single-document write covers state and events, no
/// replica set needed); the relay pulls them after publishing. The events of one document keep
/// their order in the array. [`changed`](Outbox::changed) completes on a write in this process;
/// writes of other processes are seen by the relay's poll. The lease is a document of
/// `outbox_lease`, timed by this process's clock.
#[derive(Debug, Clone)]
pub struct MongoOutbox {
    db: mongodb::Database,
    wake: Arc<Notify>,
    /// Where the events of the last `pending` call live, by the ids handed out.
    read: Arc<Mutex<ReadEvents>>,
}

#[derive(Debug, Default)]
struct ReadEvents {
    next: OutboxId,
    located: HashMap<OutboxId, (&'static str, ObjectId, ObjectId)>,
}

#[async_trait]
impl Outbox for MongoOutbox {
    async fn pending(&self, limit: usize) -> Result<Vec<OutboxEvent>, StoreError> {
        let mut found = Vec::new();
        for collection in OWNED {
            if found.len() >= limit {
                break;
            }
            let docs: Vec<Document> = self
                .db
                .collection::<Document>(collection)
                .find(doc! {"outbox.eid": {"$exists": true}})
                .projection(doc! {"outbox": 1})
                .limit(i64::try_from(limit - found.len()).unwrap_or(i64::MAX))
                .await
                .map_err(backend)?
                .try_collect()
                .await
                .map_err(backend)?;
            for document in docs {
                let doc_id = document
                    .get_object_id("_id")
                    .map_err(|e| corrupt("outbox event", e))?;
                let entity = match collection {
                    "tickets" => "ticket",
                    "payments" => "payment",
                    _ => "order",
                };
                let key = outbox_key(entity, id_from(doc_id));
                let entries = document
                    .get_array(OUTBOX)
                    .map_err(|e| corrupt("outbox event", e))?;
                for entry in entries {
                    let Bson::Document(entry) = entry else {
                        return Err(corrupt("outbox event", "not a document"));
                    };
                    let (eid, message) = outbox_message(entry)?;
                    found.push((collection, doc_id, eid, key.clone(), message));
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
        let mut by_document: HashMap<(&'static str, ObjectId), Vec<ObjectId>> = HashMap::new();
        {
            let read = self.read.lock().unwrap_or_else(PoisonError::into_inner);
            for id in ids {
                if let Some((collection, doc_id, eid)) = read.located.get(id) {
                    by_document
                        .entry((collection, *doc_id))
                        .or_default()
                        .push(*eid);
                }
            }
        }
        for ((collection, doc_id), eids) in by_document {
            self.db
                .collection::<Document>(collection)
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
