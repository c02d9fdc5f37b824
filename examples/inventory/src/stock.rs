//! The warehouse's own records: stock items, each change committed with its event into the
//! SDK's outbox in one unit — a PostgreSQL transaction of the service's own, one MongoDB
//! document, one lock in memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use mongodb::bson::{Document, doc};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use ticketing_core::outbox::{self, Outbox};
use ticketing_core::store::outbox_key;
use ticketing_core::{OutgoingMessage, StoreError, Version};
use ticketing_store::memory::InMemoryOutbox;
use ticketing_store::mongo::MongoDatabase;
use ticketing_store::postgres::{PgDatabase, append, error as pg_error};
use uuid::Uuid;

use crate::events::{StockAdjusted, StockReceived};

/// A stock item, as the warehouse keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stock {
    /// Id.
    pub id: Uuid,
    /// Stock-keeping unit, unique.
    pub sku: String,
    /// How many are in the warehouse.
    pub quantity: u64,
    /// 0 when received, + 1 per adjustment.
    pub version: Version,
}

/// The warehouse's rule: stock never goes below zero. A [`StoreError::Rejected`] source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("only {available} of {sku} in stock, cannot take {requested}")]
pub struct InsufficientStock {
    /// The item.
    pub sku: String,
    /// How many there are.
    pub available: u64,
    /// How many were asked for.
    pub requested: u64,
}

impl Stock {
    /// A new item at version 0.
    pub fn received(sku: &str, quantity: u64) -> Self {
        Stock {
            id: Uuid::now_v7(),
            sku: sku.to_owned(),
            quantity,
            version: 0,
        }
    }

    /// The item after changing its quantity by `delta`, if it is still at `expected`: a
    /// `VersionConflict` if it moved on, the warehouse's rule's refusal below zero.
    pub fn adjusted(&self, expected: Version, delta: i64) -> Result<Stock, StoreError> {
        if self.version != expected {
            return Err(StoreError::conflict("stock", self.id, expected));
        }
        let quantity = self.quantity.checked_add_signed(delta).ok_or_else(|| {
            StoreError::rejected(InsufficientStock {
                sku: self.sku.clone(),
                available: self.quantity,
                requested: delta.unsigned_abs(),
            })
        })?;
        Ok(Stock {
            quantity,
            version: expected + 1,
            ..self.clone()
        })
    }
}

fn received(stock: &Stock) -> Result<Vec<OutgoingMessage>, StoreError> {
    Ok(outbox::announce(&StockReceived {
        id: stock.id,
        sku: stock.sku.clone(),
        quantity: stock.quantity,
        version: stock.version,
    })?)
}

fn adjustment(stock: &Stock) -> Result<Vec<OutgoingMessage>, StoreError> {
    Ok(outbox::announce(&StockAdjusted {
        id: stock.id,
        sku: stock.sku.clone(),
        quantity: stock.quantity,
        version: stock.version,
    })?)
}

fn key(id: Uuid) -> String {
    outbox_key("stock", id)
}

/// Stock items with their events, on any backend.
#[async_trait]
pub trait StockStore: Send + Sync + 'static {
    /// Receives a new item at version 0 and commits `stock:received` with it.
    /// `AlreadyExists` if the SKU is taken.
    async fn receive(&self, sku: &str, quantity: u64) -> Result<Stock, StoreError>;

    /// Changes the quantity of an item still at `expected` by `delta`, to version + 1, and
    /// commits `stock:adjusted` with it. `VersionConflict` if it moved on, `NotFound` if there
    /// is no such item, `Rejected` ([`InsufficientStock`]) below zero; nothing is written then.
    async fn adjust(&self, id: Uuid, expected: Version, delta: i64) -> Result<Stock, StoreError>;

    /// The item; `NotFound` otherwise.
    async fn get(&self, id: Uuid) -> Result<Stock, StoreError>;

    /// The outbox its events wait in, for the relay.
    fn outbox(&self) -> Arc<dyn Outbox>;
}

/// Stock in memory: a map and the SDK's in-memory outbox, appended to under the map's lock.
#[derive(Debug, Clone, Default)]
pub struct MemoryStock {
    items: Arc<Mutex<HashMap<Uuid, Stock>>>,
    outbox: InMemoryOutbox,
}

impl MemoryStock {
    /// Stock committing its events to `outbox`.
    pub fn new(outbox: InMemoryOutbox) -> Self {
        MemoryStock {
            items: Arc::default(),
            outbox,
        }
    }
}

#[async_trait]
impl StockStore for MemoryStock {
    async fn receive(&self, sku: &str, quantity: u64) -> Result<Stock, StoreError> {
        let mut items = self.items.lock().unwrap_or_else(PoisonError::into_inner);
        if items.values().any(|s| s.sku == sku) {
            return Err(StoreError::AlreadyExists {
                entity: "stock",
                key: sku.to_owned(),
            });
        }
        let stock = Stock::received(sku, quantity);
        let events = received(&stock)?;
        items.insert(stock.id, stock.clone());
        self.outbox.append(&key(stock.id), events);
        Ok(stock)
    }

    async fn adjust(&self, id: Uuid, expected: Version, delta: i64) -> Result<Stock, StoreError> {
        let mut items = self.items.lock().unwrap_or_else(PoisonError::into_inner);
        let held = items
            .get(&id)
            .ok_or_else(|| StoreError::not_found("stock", id))?;
        let stock = held.adjusted(expected, delta)?;
        let events = adjustment(&stock)?;
        items.insert(id, stock.clone());
        self.outbox.append(&key(id), events);
        Ok(stock)
    }

    async fn get(&self, id: Uuid) -> Result<Stock, StoreError> {
        self.items
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
            .cloned()
            .ok_or_else(|| StoreError::not_found("stock", id))
    }

    fn outbox(&self) -> Arc<dyn Outbox> {
        Arc::new(self.outbox.clone())
    }
}

/// The application's own migrations (the `stock` table), beside the SDK's.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Stock in PostgreSQL: the service's own `stock` table; each change and its event in one
/// transaction of the service's own, the event written with [`append`].
#[derive(Debug, Clone)]
pub struct PgStock {
    db: PgDatabase,
}

fn stock_of(row: &sqlx::postgres::PgRow) -> Result<Stock, StoreError> {
    let number = |column: &str| -> Result<u64, StoreError> {
        let value: i64 = row.try_get(column).map_err(pg_error)?;
        u64::try_from(value).map_err(|e| StoreError::Corrupt {
            entity: "stock",
            reason: e.to_string(),
        })
    };
    Ok(Stock {
        id: row.try_get("id").map_err(pg_error)?,
        sku: row.try_get("sku").map_err(pg_error)?,
        quantity: number("quantity")?,
        version: number("version")?,
    })
}

impl PgStock {
    /// Stock in `db`, after running the application's migrations.
    pub async fn new(db: PgDatabase) -> Result<Self, StoreError> {
        MIGRATOR
            .run(db.pool())
            .await
            .map_err(|e| StoreError::backend("postgres", e))?;
        Ok(PgStock { db })
    }
}

#[async_trait]
impl StockStore for PgStock {
    async fn receive(&self, sku: &str, quantity: u64) -> Result<Stock, StoreError> {
        let stock = Stock::received(sku, quantity);
        let events = received(&stock)?;
        let mut tx = self.db.pool().begin().await.map_err(pg_error)?;
        let inserted = sqlx::query("INSERT INTO stock (id, sku, quantity) VALUES ($1, $2, $3)")
            .bind(stock.id)
            .bind(&stock.sku)
            .bind(i64::try_from(quantity).map_err(|e| StoreError::backend("postgres", e))?)
            .execute(&mut *tx)
            .await;
        match inserted {
            Ok(_) => {}
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Err(StoreError::AlreadyExists {
                    entity: "stock",
                    key: sku.to_owned(),
                });
            }
            Err(e) => return Err(pg_error(e)),
        }
        append(&mut tx, &key(stock.id), &events).await?;
        tx.commit().await.map_err(pg_error)?;
        Ok(stock)
    }

    async fn adjust(&self, id: Uuid, expected: Version, delta: i64) -> Result<Stock, StoreError> {
        let mut tx = self.db.pool().begin().await.map_err(pg_error)?;
        // The row, locked until the commit: the check and the write see the same version.
        let row =
            sqlx::query("SELECT id, sku, quantity, version FROM stock WHERE id = $1 FOR UPDATE")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(pg_error)?
                .ok_or_else(|| StoreError::not_found("stock", id))?;
        let held = stock_of(&row)?;
        let stock = held.adjusted(expected, delta)?;
        let events = adjustment(&stock)?;
        sqlx::query("UPDATE stock SET quantity = $2, version = $3 WHERE id = $1")
            .bind(id)
            .bind(stock.quantity as i64)
            .bind(stock.version as i64)
            .execute(&mut *tx)
            .await
            .map_err(pg_error)?;
        append(&mut tx, &key(id), &events).await?;
        tx.commit().await.map_err(pg_error)?;
        Ok(stock)
    }

    async fn get(&self, id: Uuid) -> Result<Stock, StoreError> {
        let row = sqlx::query("SELECT id, sku, quantity, version FROM stock WHERE id = $1")
            .bind(id)
            .fetch_optional(self.db.pool())
            .await
            .map_err(pg_error)?
            .ok_or_else(|| StoreError::not_found("stock", id))?;
        stock_of(&row)
    }

    fn outbox(&self) -> Arc<dyn Outbox> {
        Arc::new(self.db.outbox())
    }
}

/// Stock in MongoDB: a `stock` document per item; each change is one single-document write
/// of the item and its pending event ([`MongoDatabase::update_announcing`]), so no replica set
/// is needed.
#[derive(Debug, Clone)]
pub struct MongoStock {
    db: MongoDatabase,
    outbox: ticketing_store::mongo::MongoOutbox,
}

const COLLECTION: &str = "stock";

fn stock_of_document(doc: &Document) -> Result<Stock, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        entity: "stock",
        reason,
    };
    let number = |field: &str| {
        doc.get_i64(field)
            .map_err(|e| corrupt(e.to_string()))
            .and_then(|v| u64::try_from(v).map_err(|e| corrupt(e.to_string())))
    };
    Ok(Stock {
        id: doc
            .get_str("_id")
            .map_err(|e| corrupt(e.to_string()))?
            .parse()
            .map_err(|e: uuid::Error| corrupt(e.to_string()))?,
        sku: doc
            .get_str("sku")
            .map_err(|e| corrupt(e.to_string()))?
            .to_owned(),
        quantity: number("quantity")?,
        version: number("version")?,
    })
}

impl MongoStock {
    /// Stock in `db`, with its unique SKU index and the outbox draining `stock`.
    pub async fn new(db: MongoDatabase) -> Result<Self, StoreError> {
        db.database()
            .collection::<Document>(COLLECTION)
            .create_index(
                mongodb::IndexModel::builder()
                    .keys(doc! {"sku": 1})
                    .options(
                        mongodb::options::IndexOptions::builder()
                            .unique(true)
                            .build(),
                    )
                    .build(),
            )
            .await
            .map_err(ticketing_store::mongo::error)?;
        let outbox = db.outbox_for(&[COLLECTION]).await?;
        Ok(MongoStock { db, outbox })
    }
}

#[async_trait]
impl StockStore for MongoStock {
    async fn receive(&self, sku: &str, quantity: u64) -> Result<Stock, StoreError> {
        let stock = Stock::received(sku, quantity);
        let document = doc! {
            "_id": stock.id.to_string(),
            "sku": sku,
            "quantity": quantity as i64,
            "version": 0_i64,
        };
        match self
            .db
            .insert_announcing(COLLECTION, document, received(&stock)?)
            .await
        {
            Ok(()) => Ok(stock),
            Err(StoreError::AlreadyExists { .. }) => Err(StoreError::AlreadyExists {
                entity: "stock",
                key: sku.to_owned(),
            }),
            Err(e) => Err(e),
        }
    }

    async fn adjust(&self, id: Uuid, expected: Version, delta: i64) -> Result<Stock, StoreError> {
        let held = self.get(id).await?;
        let stock = held.adjusted(expected, delta)?;
        let after = self
            .db
            .update_announcing(
                COLLECTION,
                doc! {"_id": id.to_string(), "version": expected as i64},
                doc! {"$set": {"quantity": stock.quantity as i64, "version": stock.version as i64}},
                adjustment(&stock)?,
            )
            .await?;
        match after {
            Some(_) => Ok(stock),
            // Another writer moved it on between the read and the write.
            None => Err(StoreError::conflict("stock", id, expected)),
        }
    }

    async fn get(&self, id: Uuid) -> Result<Stock, StoreError> {
        let found = self
            .db
            .database()
            .collection::<Document>(COLLECTION)
            .find_one(doc! {"_id": id.to_string()})
            .projection(doc! {"outbox": 0})
            .await
            .map_err(ticketing_store::mongo::error)?
            .ok_or_else(|| StoreError::not_found("stock", id))?;
        stock_of_document(&found)
    }

    fn outbox(&self) -> Arc<dyn Outbox> {
        Arc::new(self.outbox.clone())
    }
}
