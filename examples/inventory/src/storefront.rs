//! The storefront's replica of the warehouse's stock: a listing per item, kept on the
//! versioned contract from both stock events. Each listener is an async function of its state
//! and the event, registered on a router; [`replicate_record`] does the write, and on a refusal
//! the lookup that tells a duplicate (acknowledge) from a gap (wait).

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use ticketing_core::store::{ReplicaStore, replicate_record};
use ticketing_core::{HandlerError, Version};
use uuid::Uuid;

use crate::events::{StockAdjusted, StockReceived};

/// The storefront's queue group (its durable name: renaming it replays the history), given
/// once on its router.
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

ticketing_core::replica!(Listing, id: Uuid, entity: "listing");

/// `stock:received`: a new listing.
pub async fn received(
    listings: Arc<dyn ReplicaStore<Listing>>,
    e: StockReceived,
) -> Result<(), HandlerError> {
    list(&*listings, e.id, e.sku, e.quantity, e.version).await
}

/// `stock:adjusted`: the listing's new quantity; an adjustment that overtakes its item's
/// receipt waits for it (a `Gap`), a duplicate is acknowledged.
pub async fn adjusted(
    listings: Arc<dyn ReplicaStore<Listing>>,
    e: StockAdjusted,
) -> Result<(), HandlerError> {
    list(&*listings, e.id, e.sku, e.quantity, e.version).await
}

/// Writes the listing a stock event describes, on the versioned contract.
async fn list(
    listings: &dyn ReplicaStore<Listing>,
    id: Uuid,
    sku: String,
    available: u64,
    version: Version,
) -> Result<(), HandlerError> {
    let listing = Listing {
        id,
        sku,
        available,
        version,
    };
    // The event carries the whole listing: written first, looked up only when refused.
    replicate_record(listings, listing).await?;
    Ok(())
}
