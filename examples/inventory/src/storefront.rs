//! The storefront's replica of the warehouse's stock: a listing per item, kept on the
//! versioned contract from both stock events. Each listener is the few lines a replica
//! listener is: [`replicate`] does the lookup, the Apply/Duplicate/Gap decision and the write.

use std::marker::PhantomData;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use ticketing_core::store::{Replica, ReplicaStore, replicate};
use ticketing_core::{Event, Handler, HandlerError, MessageContext, Version};
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

/// A stock event the storefront lists: both carry the whole listing.
pub trait StockEvent: Event {
    /// The listing the event describes, at the event's version.
    fn listing(self) -> Listing;
}

impl StockEvent for StockReceived {
    fn listing(self) -> Listing {
        Listing {
            id: self.id,
            sku: self.sku,
            available: self.quantity,
            version: self.version,
        }
    }
}

impl StockEvent for StockAdjusted {
    fn listing(self) -> Listing {
        Listing {
            id: self.id,
            sku: self.sku,
            available: self.quantity,
            version: self.version,
        }
    }
}

/// Keeps the listings on one stock event `E`: `stock:received` creates a listing,
/// `stock:adjusted` changes it; an adjustment that overtakes its item's receipt waits for it
/// (a `Gap`), a duplicate is acknowledged.
pub struct ListingListener<E> {
    listings: Arc<dyn ReplicaStore<Listing>>,
    event: PhantomData<fn(E)>,
}

impl<E> ListingListener<E> {
    /// The listener over these listings.
    pub fn new(listings: Arc<dyn ReplicaStore<Listing>>) -> Self {
        ListingListener {
            listings,
            event: PhantomData,
        }
    }
}

#[async_trait]
impl<E: StockEvent> Handler for ListingListener<E> {
    type Event = E;

    async fn handle(&self, event: E, _: &MessageContext<'_>) -> Result<(), HandlerError> {
        let listing = event.listing();
        let (id, version) = (listing.id, listing.version);
        replicate(&*self.listings, &id, version, |_| Ok(listing)).await?;
        Ok(())
    }
}
