//! Runs the inventory example once: receives and adjusts some stock, lets the events reach the
//! storefront and the alerts, and logs what they hold. In memory unless `DATABASE_URL` or
//! `MONGO_URI` is set; the bus is the SDK's in-memory twin of JetStream.

use std::sync::Arc;

use inventory::Inventory;
use ticketing_bus::memory::InMemoryBus;
use ticketing_core::Bus;
use ticketing_store::StoreSettings;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let database_url = std::env::var("DATABASE_URL").ok();
    let mongo_uri = std::env::var("MONGO_URI").ok();
    let settings = StoreSettings::choose(None, database_url.as_deref(), mongo_uri.as_deref())?;
    tracing::info!(%settings, "opening the inventory");
    let db = settings.open("inventory").await?;
    let inventory = Inventory::open(&db).await?;

    let memory = InMemoryBus::new();
    let bus: Arc<dyn Bus> = Arc::new(memory.clone());
    let token = CancellationToken::new();
    let relay = inventory.start_warehouse(bus.clone(), token.clone());
    let mut listeners = inventory.start_storefront(&bus, &token).await?;
    listeners.push(inventory.start_alerts(&bus).await?);

    let sku = format!("kettle-{}", uuid::Uuid::now_v7().simple());
    let kettle = inventory.stock.receive(&sku, 12).await?;
    let kettle = inventory
        .stock
        .adjust(kettle.id, kettle.version, -5)
        .await?;
    let kettle = inventory
        .stock
        .adjust(kettle.id, kettle.version, -4)
        .await?;
    memory.settled_with(&[&*inventory.stock.outbox()]).await;

    let listing = inventory.listings.get(&kettle.id).await?;
    let watched = inventory.watched.get(&kettle.id).await?;
    tracing::info!(sku = %listing.sku, available = listing.available, version = listing.version, "the storefront lists");
    tracing::info!(sku = %watched.sku, quantity = watched.quantity, low = watched.low, "the alerts watch");

    for listener in listeners {
        listener.stop().await;
    }
    relay.stop().await;
    Ok(())
}
