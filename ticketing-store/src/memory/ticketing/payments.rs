//! Payments in memory: one open attempt per order, checked under the store's lock.

#[allow(clippy::wildcard_imports)]
use super::*;

/// The payments service's payments, in memory: at most one pending or succeeded attempt per
/// order, checked under the store's lock; a charge's events go to the shared outbox in the same
/// critical section.
#[derive(Debug, Clone)]
pub struct InMemoryPaymentStore {
    inner: Arc<Mutex<PaymentRows>>,
    outbox: InMemoryOutbox,
    pub(super) faults: StoreFaults,
}

#[derive(Debug, Default)]
struct PaymentRows {
    /// Payments by id, with their insertion order.
    rows: HashMap<Id, (u64, Payment)>,
    /// The attempt holding each order (pending or succeeded).
    holding: HashMap<Id, Id>,
    next: u64,
}

impl InMemoryPaymentStore {
    /// An empty store committing its events to `outbox`.
    pub fn with(outbox: &InMemoryOutbox) -> Self {
        InMemoryPaymentStore {
            inner: Arc::default(),
            outbox: outbox.clone(),
            faults: StoreFaults::default(),
        }
    }

    /// Changes a payment under the lock if it is in `from`; `VersionConflict` otherwise.
    fn change(
        &self,
        id: Id,
        from: PaymentStatus,
        change: impl FnOnce(&Payment) -> Result<(Payment, Vec<OutgoingMessage>), StoreError>,
    ) -> Result<Payment, StoreError> {
        let mut payments = lock(&self.inner);
        let (_, stored) = payments
            .rows
            .get(&id)
            .ok_or_else(|| StoreError::not_found("payment", id))?;
        if stored.status != from {
            return Err(StoreError::conflict("payment", id, stored.version));
        }
        let (changed, events) = change(stored)?;
        if !changed.status.holds_order() && payments.holding.get(&changed.order_id) == Some(&id) {
            payments.holding.remove(&changed.order_id);
        }
        if let Some((_, stored)) = payments.rows.get_mut(&id) {
            *stored = changed.clone();
        }
        self.outbox.append(&outbox_key("payment", id), events);
        Ok(changed)
    }
}

#[async_trait]
impl PaymentStore for InMemoryPaymentStore {
    async fn begin(&self, payment: Payment) -> Result<Payment, StoreError> {
        self.faults.check(StoreWrite::PaymentBegin)?;
        let mut payments = lock(&self.inner);
        if payments.holding.contains_key(&payment.order_id) {
            return Err(StoreError::AlreadyExists {
                entity: "payment",
                key: payment.order_id.to_string(),
            });
        }
        if payments.rows.contains_key(&payment.id) {
            return Err(StoreError::AlreadyExists {
                entity: "payment",
                key: payment.id.to_string(),
            });
        }
        let stored = payment.begun();
        payments.next += 1;
        let seq = payments.next;
        payments.holding.insert(stored.order_id, stored.id);
        payments.rows.insert(stored.id, (seq, stored.clone()));
        Ok(stored)
    }

    async fn settle_announcing(
        &self,
        id: Id,
        outcome: Outcome,
        announce: Announce<'_, Payment>,
    ) -> Result<Payment, StoreError> {
        self.faults.check(StoreWrite::PaymentSettle)?;
        self.change(id, PaymentStatus::Pending, |stored| {
            let settled = stored.settled(outcome);
            let events = settled.announced(announce)?;
            Ok((settled, events))
        })
    }

    async fn refund(&self, id: Id) -> Result<Payment, StoreError> {
        self.faults.check(StoreWrite::PaymentRefund)?;
        self.change(id, PaymentStatus::Succeeded, |stored| {
            Ok((stored.refunded(), Vec::new()))
        })
    }

    async fn get(&self, id: Id) -> Result<Payment, StoreError> {
        lock(&self.inner)
            .rows
            .get(&id)
            .map(|(_, p)| p.clone())
            .ok_or_else(|| StoreError::not_found("payment", id))
    }

    async fn for_order(&self, order_id: Id) -> Result<Vec<Payment>, StoreError> {
        let payments = lock(&self.inner);
        let mut found: Vec<&(u64, Payment)> = payments
            .rows
            .values()
            .filter(|(_, p)| p.order_id == order_id)
            .collect();
        found.sort_by_key(|(seq, _)| *seq);
        Ok(found.into_iter().map(|(_, p)| p.clone()).collect())
    }

    async fn pending(&self, limit: usize) -> Result<Vec<Payment>, StoreError> {
        let payments = lock(&self.inner);
        let mut found: Vec<&(u64, Payment)> = payments
            .rows
            .values()
            .filter(|(_, p)| p.status == PaymentStatus::Pending)
            .collect();
        found.sort_by_key(|(seq, _)| *seq);
        Ok(found
            .into_iter()
            .take(limit)
            .map(|(_, p)| p.clone())
            .collect())
    }
}
