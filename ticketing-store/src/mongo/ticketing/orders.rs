//! Orders in MongoDB, joined with the ticket replica; a reservation is one insert under a partial unique index.

#[allow(clippy::wildcard_imports)]
use super::*;

/// Orders in MongoDB, joined with the ticket replica.
#[derive(Debug, Clone)]
pub struct MongoOrderStore {
    pub(super) orders: Collection<Document>,
    pub(super) tickets: MongoTicketReplicaStore,
    pub(super) wake: Arc<Notify>,
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
        let find = self.orders.find(doc! {"user_id": oid(user_id)});
        let orders = all(find.sort(doc! {"created_at": 1, "_id": 1}), order_doc_of).await?;
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
