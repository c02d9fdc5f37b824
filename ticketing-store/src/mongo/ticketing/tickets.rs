//! Tickets in MongoDB; their pending events live in each ticket's document.

#[allow(clippy::wildcard_imports)]
use super::*;

/// Tickets in MongoDB; their pending events live in each ticket's document.
#[derive(Debug, Clone)]
pub struct MongoTicketStore {
    pub(super) tickets: Collection<Document>,
    pub(super) order_replicas: MongoOrderReplicaStore,
    pub(super) wake: Arc<Notify>,
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
        let find = self.tickets.find(doc! {"order_id": Bson::Null});
        all(find.sort(doc! {"created_at": 1, "_id": 1}), ticket_of).await
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
        let find = self.tickets.find(filter);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        all(
            find.sort(doc! {"created_at": -1, "_id": -1}).limit(limit),
            ticket_of,
        )
        .await
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
                doc! {"$set": versioned(order.fields(), order.version)?},
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
