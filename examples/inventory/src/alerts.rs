//! Low-stock alerts: a service that hears only `stock:adjusted`, never an item's
//! `stock:received` (version 0), and may be started long after the items were received. Its
//! replica starts each item at the first version it sees ([`ReplicaStart::FirstSeen`]); under
//! the default rule it would wait for a version 0 that never comes to it.
//!
//! [`ReplicaStart::FirstSeen`]: ticketing_core::ReplicaStart::FirstSeen

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use ticketing_core::store::{ReplicaStore, replicate};
use ticketing_core::{HandlerError, Listener, MessageContext, Version};
use uuid::Uuid;

use crate::events::StockAdjusted;

/// The alerts service's queue group.
pub const QUEUE_GROUP: &str = "restock-alerts";

/// Below this many an item is low.
pub const LOW: u64 = 5;

/// An item as the alerts service knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watched {
    /// The stock item.
    pub id: Uuid,
    /// Its stock-keeping unit.
    pub sku: String,
    /// How many there are.
    pub quantity: u64,
    /// Whether it is below [`LOW`].
    pub low: bool,
    /// The version of the last event applied.
    pub version: Version,
}

ticketing_core::replica!(Watched, id: Uuid, entity: "watched item");

/// `stock:adjusted`: records the quantity, and logs when an item goes low.
pub struct WatchAdjusted(pub Arc<dyn ReplicaStore<Watched>>);

#[async_trait]
impl Listener for WatchAdjusted {
    type Event = StockAdjusted;

    fn queue_group(&self) -> &str {
        QUEUE_GROUP
    }

    async fn on_message(
        &self,
        e: StockAdjusted,
        _: &MessageContext<'_>,
    ) -> Result<(), HandlerError> {
        let low = e.quantity < LOW;
        let watched = Watched {
            id: e.id,
            sku: e.sku,
            quantity: e.quantity,
            low,
            version: e.version,
        };
        replicate(&*self.0, &e.id, e.version, |held| {
            if low && !held.is_some_and(|h| h.low) {
                tracing::warn!(sku = %watched.sku, quantity = watched.quantity, "stock is low");
            }
            Ok(watched)
        })
        .await?;
        Ok(())
    }
}
