//! The warehouse's events: plain serde structs bound to their subjects. Each carries the stock
//! item's version, so replicas apply them on the versioned contract.

use serde::{Deserialize, Serialize};
use ticketing_core::{Event, Version};
use uuid::Uuid;

/// `stock:received` — a new item is in the warehouse (version 0).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StockReceived {
    /// The item.
    pub id: Uuid,
    /// Its stock-keeping unit.
    pub sku: String,
    /// How many arrived.
    pub quantity: u64,
    /// Always 0.
    pub version: Version,
}

/// `stock:adjusted` — the quantity of an item changed (version + 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StockAdjusted {
    /// The item.
    pub id: Uuid,
    /// Its stock-keeping unit.
    pub sku: String,
    /// How many there are now.
    pub quantity: u64,
    /// The item's new version.
    pub version: Version,
}

impl Event for StockReceived {
    const SUBJECT: &'static str = "stock:received";
    fn message_id(&self) -> String {
        format!("{}:{}:{}", Self::SUBJECT, self.id, self.version)
    }
}

impl Event for StockAdjusted {
    const SUBJECT: &'static str = "stock:adjusted";
    fn message_id(&self) -> String {
        format!("{}:{}:{}", Self::SUBJECT, self.id, self.version)
    }
}
