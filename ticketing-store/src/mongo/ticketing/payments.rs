//! Payments in MongoDB: a document per attempt, one open attempt per order by a partial unique index.

#[allow(clippy::wildcard_imports)]
use super::*;

/// Payments in MongoDB: a document per attempt; `open` is true while it is pending or
/// succeeded, and a unique index on `order_id` restricted to open attempts keeps one per
/// order. A charge's events go into the payment's own `outbox` array in the same
/// single-document update.
#[derive(Debug, Clone)]
pub struct MongoPaymentStore {
    pub(super) payments: Collection<Document>,
    pub(super) wake: Arc<Notify>,
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
        all(find, payment_of).await
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
