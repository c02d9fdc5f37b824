//! Charging an attempt and settling it, for the request that made it and for the repair of
//! attempts left pending: a crash between the provider's charge and the commit, a provider that
//! stayed down, or a store that failed after the charge.
//!
//! Both ask the provider with the attempt's own request and idempotency key
//! ([`ChargeRequest::for_attempt`]), so asking again charges once. Whoever settles first wins;
//! the other finds the attempt settled and takes its outcome.

use std::collections::HashSet;
use std::time::Duration;

use ticketing_core::ticketing::payment::{Outcome, Payment, PaymentStatus, PaymentStore};
use ticketing_core::{Id, StoreError};
use tokio_util::sync::CancellationToken;

use crate::models::announce_created;
use crate::provider::{ChargeRequest, PaymentProvider, ProviderError};

/// Where an attempt stands after [`charge_and_settle`].
#[derive(Debug)]
pub enum Settled {
    /// Settled (here or by someone else first): succeeded or failed.
    Done(Payment),
    /// The provider did not answer: the attempt stays pending, for the repair.
    Unknown(String),
}

/// Asks the provider to charge `attempt` — up to `tries` times while it is unavailable, always
/// with the same request and key — and settles the attempt with the answer, committing
/// `payment:created` with a charge.
pub async fn charge_and_settle(
    payments: &dyn PaymentStore,
    provider: &dyn PaymentProvider,
    attempt: &Payment,
    tries: usize,
) -> Result<Settled, StoreError> {
    let request = ChargeRequest::for_attempt(attempt);
    let mut tried = 0;
    let outcome = loop {
        tried += 1;
        match provider.charge(&request).await {
            Ok(charge) => break Outcome::Charged(charge),
            Err(ProviderError::Declined { message, .. } | ProviderError::Invalid(message)) => {
                break Outcome::Declined(message);
            }
            Err(ProviderError::Unavailable(reason)) if tried < tries => {
                tracing::warn!(%reason, payment = %attempt.id, "provider unavailable; asking again with the same key");
            }
            Err(ProviderError::Unavailable(reason)) => {
                tracing::warn!(%reason, payment = %attempt.id, "provider unavailable; the attempt stays pending");
                return Ok(Settled::Unknown(reason));
            }
        }
    };
    match payments
        .settle_announcing(attempt.id, outcome, &announce_created)
        .await
    {
        Ok(settled) => Ok(Settled::Done(settled)),
        // Settled meanwhile (the repair, or another replica's): its outcome stands, and it is
        // the same charge, asked with the same key.
        Err(StoreError::VersionConflict { .. }) => {
            Ok(Settled::Done(payments.get(attempt.id).await?))
        }
        Err(e) => Err(e),
    }
}

/// How the repair runs.
#[derive(Debug, Clone, Copy)]
pub struct RepairOptions {
    /// Between two looks at the pending attempts. An attempt is repaired once it has been seen
    /// pending twice, so it is at least this old: a request still charging it is left alone.
    pub every: Duration,
    /// Attempts taken per look.
    pub batch: usize,
}

impl Default for RepairOptions {
    fn default() -> Self {
        RepairOptions {
            every: Duration::from_secs(30),
            batch: 100,
        }
    }
}

/// What one look of the repair did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RepairReport {
    /// Settled as charged.
    pub charged: usize,
    /// Settled as declined.
    pub declined: usize,
    /// Still pending: the provider did not answer, or they were seen for the first time.
    pub pending: usize,
}

/// The repair of pending attempts: remembers what it saw pending, and settles what is still
/// pending at its next look.
pub struct Repair {
    options: RepairOptions,
    seen: HashSet<Id>,
}

impl Repair {
    /// A repair that has seen nothing yet.
    pub fn new(options: RepairOptions) -> Self {
        Repair {
            options,
            seen: HashSet::new(),
        }
    }

    /// One look: settles the attempts that were already pending at the last look.
    pub async fn look(
        &mut self,
        payments: &dyn PaymentStore,
        provider: &dyn PaymentProvider,
    ) -> Result<RepairReport, StoreError> {
        let pending = payments.pending(self.options.batch).await?;
        let mut report = RepairReport::default();
        let mut seen = HashSet::new();
        for attempt in pending {
            if !self.seen.contains(&attempt.id) {
                seen.insert(attempt.id);
                report.pending += 1;
                continue;
            }
            match charge_and_settle(payments, provider, &attempt, 1).await? {
                Settled::Done(done) if done.status == PaymentStatus::Failed => {
                    tracing::info!(payment = %done.id, order = %done.order_id, "repaired: a pending attempt was declined");
                    report.declined += 1;
                }
                Settled::Done(done) => {
                    tracing::warn!(payment = %done.id, order = %done.order_id, status = done.status.as_str(), "repaired: a pending attempt was settled");
                    report.charged += 1;
                }
                Settled::Unknown(_) => {
                    seen.insert(attempt.id);
                    report.pending += 1;
                }
            }
        }
        self.seen = seen;
        Ok(report)
    }

    /// Looks every [`RepairOptions::every`] until `token` is cancelled.
    pub async fn run(
        mut self,
        payments: std::sync::Arc<dyn PaymentStore>,
        provider: std::sync::Arc<dyn PaymentProvider>,
        token: CancellationToken,
    ) {
        let mut ticks = tokio::time::interval(self.options.every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = token.cancelled() => return,
                _ = ticks.tick() => {}
            }
            if let Err(error) = self.look(&*payments, &*provider).await {
                tracing::warn!(%error, "the repair of pending payments could not look; trying again later");
            }
        }
    }
}
