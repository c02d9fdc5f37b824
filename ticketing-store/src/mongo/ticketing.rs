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
use futures::TryStreamExt;
use mongodb::bson::oid::ObjectId;
use mongodb::bson::{Bson, Document, doc};
use mongodb::options::{IndexOptions, ReturnDocument};
use mongodb::{Collection, IndexModel};
use tokio::sync::Notify;

use super::{
    MongoDatabase, MongoOutbox, OUTBOX, apply_versioned, backend, corrupt, db_version,
    duplicate_key, millis, outbox_entries,
};
use ticketing_core::ticketing::Price;
use ticketing_core::ticketing::payment::{
    Outcome, PayableOrder, Payment, PaymentStatus, PaymentStore,
};
use ticketing_core::ticketing::reservation::OrderStatus;
use ticketing_core::ticketing::store::{
    Announce, NewOrder, Order, OrderReplica, OrderStore, ReplicaStore, ReservationError,
    StoreError, Ticket, TicketReplica, TicketStore, User, UserStore,
};
use ticketing_core::version::ReplicaStart;
use ticketing_core::{Id, OutgoingMessage, Version};

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

    /// Users.
    pub fn users(&self) -> MongoUserStore {
        MongoUserStore {
            users: self.db.collection("users"),
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
        MongoPayableOrderStore {
            replicas: self.db.collection("payable_orders"),
        }
    }

    /// The replica of orders (tickets service).
    pub fn order_replicas(&self) -> MongoOrderReplicaStore {
        MongoOrderReplicaStore {
            replicas: self.db.collection("order_replicas"),
        }
    }

    /// The replica of tickets (orders service).
    pub fn ticket_replicas(&self) -> MongoTicketReplicaStore {
        MongoTicketReplicaStore {
            replicas: self.db.collection("ticket_replicas"),
        }
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
                    Some(_) => StoreError::conflict("ticket", ticket.id, ticket.version),
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
            .ok_or(StoreError::conflict("payment", current.id, current.version))?;
        if any {
            self.wake.notify_one();
        }
        Ok(())
    }

    async fn in_status(&self, id: Id, from: PaymentStatus) -> Result<Payment, StoreError> {
        let current = self.get(id).await?;
        if current.status != from {
            return Err(StoreError::conflict("payment", id, current.version));
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
        let ticket = self.tickets.find(&order.ticket_id).await?;
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
            .find(&order.ticket_id)
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
                        ReservationError::TicketReserved {
                            ticket_id: order.ticket_id,
                        }
                        .into()
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
        let conflict = || StoreError::conflict("order", id, expected_version);
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
