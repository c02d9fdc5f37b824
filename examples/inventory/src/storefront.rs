//! The storefront's replica of the warehouse's stock: a listing per item, kept on the
//! versioned contract from both stock events. Each listener is the few lines a replica
//! listener is: [`replicate`] does the lookup, the Apply/Duplicate/Gap decision and the write.

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use ticketing_core::store::{Replica, ReplicaStore, replicate};
use ticketing_core::{HandlerError, Listener, MessageContext, Version};
use uuid::Uuid;

use crate::events::{StockAdjusted, StockReceived};

/// The storefront's queue group (its durable name: renaming it replays the history).
pub const QUEUE_GROUP: &str = "storefront";

/// What the storefront shows of an item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    /// The stock item.
    pub id: Uuid,
    /// Its stock-keeping unit.
    pub sku: String,
    /// How many can be sold.
    pub available: u64,
    /// The version of the last event applied.
    pub version: Version,
}

impl Replica for Listing {
    type Id = Uuid;
    const ENTITY: &'static str = "listing";
    fn id(&self) -> &Uuid {
        &self.id
    }
    fn version(&self) -> Version {
        self.version
    }
}

/// `stock:received`: a new listing.
pub struct ListOnReceived(pub Arc<dyn ReplicaStore<Listing>>);

#[async_trait]
impl Listener for ListOnReceived {
    type Event = StockReceived;

    fn queue_group(&self) -> &str {
        QUEUE_GROUP
    }

    async fn on_message(
        &self,
        e: StockReceived,
        _: &MessageContext<'_>,
    ) -> Result<(), HandlerError> {
        let listing = Listing {
            id: e.id,
            sku: e.sku,
            available: e.quantity,
            version: e.version,
        };
        replicate(&*self.0, &e.id, e.version, |_| Ok(listing)).await?;
        Ok(())
    }
}

/// `stock:adjusted`: the listing's quantity; an adjustment that overtakes its item's
/// `stock:received` waits for it (a `Gap`).
pub struct ListOnAdjusted(pub Arc<dyn ReplicaStore<Listing>>);

#[async_trait]
impl Listener for ListOnAdjusted {
    type Event = StockAdjusted;

    fn queue_group(&self) -> &str {
        QUEUE_GROUP
    }

    async fn on_message(
        &self,
        e: StockAdjusted,
        _: &MessageContext<'_>,
    ) -> Result<(), HandlerError> {
        let listing = Listing {
            id: e.id,
            sku: e.sku,
            available: e.quantity,
            version: e.version,
        };
        replicate(&*self.0, &e.id, e.version, |_| Ok(listing)).await?;
        Ok(())
    }
}
