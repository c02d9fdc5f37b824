//! The inventory's behaviour, written once and run on every store: in memory on the paused
//! clock, on PostgreSQL and MongoDB in real time. Every scenario runs the warehouse's relay and
//! the listeners over the SDK's in-memory bus, whose harness waits for the whole system to be
//! at rest (relays included) and tells what each group did by event type.
#![allow(dead_code, unreachable_pub)]

/// One test per scenario, each on a fresh database from `$db`.
macro_rules! scenario_tests {
    (#[$attr:meta] $db:expr) => {
        scenario_tests!(@cases #[$attr] $db;
            a_received_item_is_listed
            a_duplicate_delivery_is_acknowledged_and_changes_nothing
            an_adjustment_that_overtakes_its_receipt_waits_and_converges
            a_malformed_event_is_dead_lettered_with_its_reason
            events_leave_through_the_outbox_only_after_their_change_commits
            the_alerts_replica_starts_mid_stream
            under_the_default_rule_the_same_replica_would_wait_for_version_0
        );
    };
    (@cases #[$attr:meta] $db:expr; $($case:ident)*) => {
        $(
            #[$attr]
            async fn $case() {
                scenarios::$case($db.await).await;
            }
        )*
    };
}

use std::sync::Arc;
use std::time::Duration;

use inventory::Inventory;
use inventory::alerts::{self, WatchAdjusted};
use inventory::events::{StockAdjusted, StockReceived};
use inventory::stock::{InsufficientStock, Stock};
use inventory::storefront::{self, Listing};
use ticketing_bus::memory::{InMemoryBus, ReleaseOrder};
use ticketing_core::outbox::RelayHandle;
use ticketing_core::{Bus, Event, ListenerHandle, OutgoingMessage, ReplicaStart, StoreError};
use ticketing_store::Database;
use tokio_util::sync::CancellationToken;

/// The inventory on `db`, with a bus of its own.
pub struct System {
    pub db: Database,
    pub inventory: Inventory,
    pub memory: InMemoryBus,
    pub bus: Arc<dyn Bus>,
    relay: Option<RelayHandle>,
    listeners: Vec<ListenerHandle>,
}

/// The inventory's database on `settings`, which must be running.
pub async fn opened(settings: ticketing_store::StoreSettings) -> Database {
    let opened = settings.open("inventory").await;
    opened.unwrap_or_else(|e| panic!("{settings} must be running (scripts/test starts it): {e}"))
}

impl System {
    pub async fn new(db: Database) -> Self {
        let inventory = Inventory::open(&db).await.expect("open the inventory");
        let memory = InMemoryBus::new();
        System {
            db,
            inventory,
            bus: Arc::new(memory.clone()),
            memory,
            relay: None,
            listeners: Vec::new(),
        }
    }

    pub fn start_relay(&mut self) {
        self.relay = Some(
            self.inventory
                .start_warehouse(self.bus.clone(), CancellationToken::new()),
        );
    }

    pub async fn start_storefront(&mut self) {
        let started = self
            .inventory
            .start_storefront(&self.bus, &CancellationToken::new())
            .await;
        self.listeners.extend(started.expect("storefront"));
    }

    pub async fn start_alerts(&mut self) {
        let started = self.inventory.start_alerts(&self.bus).await;
        self.listeners.push(started.expect("alerts"));
    }

    /// Everything running: relay, storefront, alerts.
    pub async fn running(db: Database) -> Self {
        let mut system = System::new(db).await;
        system.start_relay();
        system.start_storefront().await;
        system.start_alerts().await;
        system
    }

    /// Waits until the outbox is empty and the bus has settled (60 s at most).
    pub async fn settled(&self) {
        let outbox = self.inventory.stock.outbox();
        tokio::time::timeout(
            Duration::from_secs(60),
            self.memory.settled_with(&[&*outbox]),
        )
        .await
        .expect("the system comes to rest");
    }

    /// Receives `quantity` of a new item named `name` (made unique).
    pub async fn receive(&self, name: &str, quantity: u64) -> Stock {
        let received = self.inventory.stock.receive(&sku(name), quantity).await;
        received.expect("receive")
    }

    /// Adjusts `item`'s stock by `delta`, from the version it holds.
    pub async fn adjust(&self, item: &Stock, delta: i64) -> Stock {
        let adjusted = self
            .inventory
            .stock
            .adjust(item.id, item.version, delta)
            .await;
        adjusted.expect("adjust")
    }

    /// How the storefront's deliveries of `StockAdjusted` went.
    pub fn storefront_adjustments(&self) -> ticketing_bus::memory::GroupStats {
        self.memory
            .stats_of::<StockAdjusted>(storefront::QUEUE_GROUP)
    }

    pub async fn listing(&self, id: &uuid::Uuid) -> Option<Listing> {
        self.inventory.listings.find(id).await.expect("find")
    }

    pub async fn stop(self) {
        for listener in self.listeners {
            listener.stop().await;
        }
        if let Some(relay) = self.relay {
            relay.stop().await;
        }
    }
}

/// Waits (30 s at most) until `group` has nacked at least `nacks` adjustments: they are
/// waiting for an earlier event.
async fn adjustments_wait(memory: &InMemoryBus, group: &str, nacks: u64) {
    let waited = async {
        while memory.stats_of::<StockAdjusted>(group).nacked < nacks {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), waited)
        .await
        .expect("the adjustments wait");
}

fn sku(name: &str) -> String {
    format!("{name}-{}", uuid::Uuid::now_v7().simple())
}

pub async fn a_received_item_is_listed(db: Database) {
    let system = System::running(db).await;
    let item = system.receive("kettle", 12).await;
    system.settled().await;
    assert_eq!(
        system.listing(&item.id).await,
        Some(Listing {
            id: item.id,
            sku: item.sku.clone(),
            available: 12,
            version: 0
        })
    );
    let stats = system
        .memory
        .stats_of::<StockReceived>(storefront::QUEUE_GROUP);
    assert_eq!((stats.acked, stats.dead_lettered), (1, 0));
    assert_eq!(
        system
            .memory
            .stats_of::<StockReceived>(alerts::QUEUE_GROUP)
            .delivered,
        0,
        "the alerts service does not hear receipts"
    );
    system.stop().await;
}

pub async fn a_duplicate_delivery_is_acknowledged_and_changes_nothing(db: Database) {
    // The storefront alone hears the adjustment, so the copy goes to it.
    let mut system = System::new(db).await;
    system.start_relay();
    system.start_storefront().await;
    let item = system.receive("teapot", 3).await;
    system.settled().await;
    system
        .memory
        .faults()
        .duplicate_next_delivery(StockAdjusted::SUBJECT);
    let item = system.adjust(&item, 4).await;
    system.settled().await;
    let stats = system.storefront_adjustments();
    assert_eq!(stats.delivered, 2, "delivered twice");
    assert_eq!(
        (stats.acked, stats.dead_lettered),
        (2, 0),
        "both acknowledged"
    );
    assert_eq!(system.listing(&item.id).await.expect("listed").available, 7);
    assert_eq!(system.listing(&item.id).await.expect("listed").version, 1);
    system.stop().await;
}

pub async fn an_adjustment_that_overtakes_its_receipt_waits_and_converges(db: Database) {
    let system = System::running(db).await;
    system.memory.faults().hold(StockReceived::SUBJECT);
    let item = system.receive("kettle", 10).await;
    let item = system.adjust(&item, -3).await;
    let item = system.adjust(&item, -2).await;
    // The adjustments reach the storefront first: it has nothing to apply them to, and waits.
    adjustments_wait(&system.memory, storefront::QUEUE_GROUP, 2).await;
    assert_eq!(system.listing(&item.id).await, None);
    system
        .memory
        .faults()
        .release(StockReceived::SUBJECT, ReleaseOrder::InOrder);
    system.settled().await;
    let listing = system.listing(&item.id).await.expect("listed");
    assert_eq!((listing.available, listing.version), (5, 2));
    let stats = system.storefront_adjustments();
    assert_eq!(
        (stats.acked, stats.dead_lettered),
        (2, 0),
        "nothing dead-lettered"
    );
    system.stop().await;
}

pub async fn a_malformed_event_is_dead_lettered_with_its_reason(db: Database) {
    let system = System::running(db).await;
    system
        .bus
        .publish(OutgoingMessage::new(StockAdjusted::SUBJECT, "{not json"))
        .await
        .expect("publish");
    system.settled().await;
    let dead = system.bus.dead_letters().await.expect("dead letters");
    let ours: Vec<_> = dead
        .iter()
        .filter(|d| d.group == storefront::QUEUE_GROUP)
        .collect();
    assert_eq!(ours.len(), 1, "{dead:?}");
    assert_eq!(ours[0].message.subject, StockAdjusted::SUBJECT);
    assert!(!ours[0].reason.is_empty(), "{:?}", ours[0]);
    let stats = system.storefront_adjustments();
    assert_eq!(
        (stats.delivered, stats.dead_lettered),
        (1, 1),
        "once, not in a loop"
    );
    system.stop().await;
}

pub async fn events_leave_through_the_outbox_only_after_their_change_commits(db: Database) {
    let mut system = System::new(db).await;
    system.start_storefront().await;
    let item = system.receive("mug", 2).await;
    // Committed with the change, not yet published: no relay runs.
    assert_eq!(
        system
            .inventory
            .stock
            .outbox()
            .pending(10)
            .await
            .expect("pending")
            .len(),
        1
    );
    assert!(system.memory.published::<StockReceived>().is_empty());
    // A change the warehouse's rule refuses writes nothing and announces nothing.
    let refused = system
        .inventory
        .stock
        .adjust(item.id, item.version, -3)
        .await
        .expect_err("refused");
    assert!(
        matches!(refused, StoreError::Rejected(_))
            && refused.rejection::<InsufficientStock>().is_some(),
        "{refused}"
    );
    let stale = system.inventory.stock.adjust(item.id, 7, 1).await;
    assert!(
        matches!(stale, Err(StoreError::VersionConflict { .. })),
        "{stale:?}"
    );
    assert_eq!(
        system.inventory.stock.get(item.id).await.expect("get"),
        item
    );
    // The relay publishes what was committed, once, and empties the outbox.
    system.start_relay();
    system.settled().await;
    assert_eq!(
        system.memory.published::<StockReceived>(),
        vec![StockReceived {
            id: item.id,
            sku: item.sku.clone(),
            quantity: 2,
            version: 0
        }]
    );
    assert!(system.memory.published::<StockAdjusted>().is_empty());
    assert!(
        system
            .inventory
            .stock
            .outbox()
            .pending(10)
            .await
            .expect("pending")
            .is_empty()
    );
    assert_eq!(system.listing(&item.id).await.expect("listed").available, 2);
    system.stop().await;
}

pub async fn the_alerts_replica_starts_mid_stream(db: Database) {
    let mut system = System::new(db).await;
    system.start_relay();
    system.start_storefront().await;
    // The item's history so far: received, then adjusted twice; the alerts service is not
    // running yet.
    let item = system.receive("kettle", 9).await;
    let item = system.adjust(&item, -2).await;
    let item = system.adjust(&item, -3).await;
    system.settled().await;
    // Started now, it hears version 1 first (never version 0) and starts the record there.
    system.start_alerts().await;
    let item = system.adjust(&item, -1).await;
    system.settled().await;
    let watched = system
        .inventory
        .watched
        .get(&item.id)
        .await
        .expect("watched");
    assert_eq!(
        (watched.quantity, watched.low, watched.version),
        (3, true, 3)
    );
    let stats = system.memory.stats_of::<StockAdjusted>(alerts::QUEUE_GROUP);
    assert_eq!((stats.acked, stats.dead_lettered), (3, 0));
    system.stop().await;
}

pub async fn under_the_default_rule_the_same_replica_would_wait_for_version_0(db: Database) {
    let system = System::new(db).await;
    // The alerts' listener over a replica that sees every record from version 0.
    let from_first = system
        .db
        .replicas::<alerts::Watched>("watched_from_first", ReplicaStart::FromFirst)
        .await
        .expect("replicas");
    let relay = system
        .inventory
        .start_warehouse(system.bus.clone(), CancellationToken::new());
    let listener = ticketing_core::spawn_listener(&system.bus, WatchAdjusted(from_first.clone()))
        .await
        .expect("listener");
    let item = system.receive("kettle", 9).await;
    system.adjust(&item, -2).await;
    adjustments_wait(&system.memory, alerts::QUEUE_GROUP, 3).await;
    assert_eq!(from_first.find(&item.id).await.expect("find"), None);
    listener.stop().await;
    relay.stop().await;
}
