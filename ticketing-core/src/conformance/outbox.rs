//! The outbox cases of the store conformance suite: events commit with state or not at all,
//! per-record order, and the relay's promises over each backend's outbox.

#![allow(missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;

use super::commit::{
    a_round_after_a_stopped_relay, assert_pending_in_order, pending, stored_once, two_relays,
};
use super::store::{StoreFactory, Stores, replicated_ticket, ticket};
use crate::bus::OutgoingMessage;
use crate::store::StoreError;
use crate::ticketing::OrderStatus;
use crate::ticketing::store::ReservationError;
use crate::ticketing::store::{NewOrder, Order, OrderReplica, Ticket};
use crate::{Id, PublishError};

pub use super::commit::RecordingBus;

/// One message per change: subject `ticket`, the version as payload, a unique message id.
fn announce_ticket(t: &Ticket) -> Result<Vec<OutgoingMessage>, PublishError> {
    Ok(vec![
        OutgoingMessage::new("ticket", t.version.to_string())
            .with_header("title", t.title.clone())
            .with_message_id(format!("ticket:{}:{}", t.id, t.version)),
    ])
}

fn announce_order(o: &Order) -> Result<Vec<OutgoingMessage>, PublishError> {
    Ok(vec![
        OutgoingMessage::new(format!("order:{}", o.status), o.version.to_string())
            .with_message_id(format!("order:{}:{}", o.id, o.version)),
    ])
}

fn version_of(message: &OutgoingMessage) -> u64 {
    std::str::from_utf8(&message.payload)
        .expect("utf-8")
        .parse()
        .expect("version")
}

/// `n` new tickets, each committed with its `ticket:created`-like event.
async fn created_tickets(stores: &Stores, n: usize) -> Vec<Ticket> {
    let mut tickets = Vec::new();
    for _ in 0..n {
        tickets.push(announced_concert(stores).await);
    }
    tickets
}

/// Retitles each of `tickets` `times` times, a writer per ticket, all at once, each change
/// `pause` after the one before.
async fn update_each(stores: &Stores, tickets: &[Ticket], times: u64, pause: Duration) {
    join_all(tickets.iter().map(|t| async move {
        let mut current = t.clone();
        for n in 0..times {
            let retitled = Ticket {
                title: format!("v{n}"),
                ..current.clone()
            };
            current = stores
                .tickets
                .update_announcing(&retitled, &announce_ticket)
                .await
                .expect("update");
            if !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
        }
    }))
    .await;
}

/// A ticket, "concert", created with its event.
async fn announced_concert(stores: &Stores) -> Ticket {
    let created = stores
        .tickets
        .create_announcing(ticket("concert"), &announce_ticket)
        .await;
    created.expect("create")
}

pub async fn state_and_events_commit_together(factory: &dyn StoreFactory) {
    let stores = factory.stores().await;
    let created = announced_concert(&stores).await;
    let updated = stores
        .tickets
        .update_announcing(
            &Ticket {
                title: "renamed".to_owned(),
                ..created.clone()
            },
            &announce_ticket,
        )
        .await
        .expect("update");
    let key = format!("ticket:{}", created.id);
    assert_eq!(
        pending(&*stores.outbox).await,
        vec![(key.clone(), 0), (key, 1)]
    );
    let events = stores.outbox.pending(10).await.expect("pending");
    assert_eq!(
        events[1].message.message_id.as_deref(),
        Some(format!("ticket:{}:1", updated.id).as_str())
    );
    assert_eq!(
        events[1].message.headers.get("title").map(String::as_str),
        Some("renamed"),
        "headers are kept"
    );
    assert_eq!(events[1].message.subject, "ticket");

    let replica = replicated_ticket(&stores, "replica").await;
    let order = stores
        .orders
        .reserve_announcing(
            NewOrder {
                id: Id::new(),
                user_id: Id::new(),
                ticket_id: replica.id,
                expires_at: "2030-01-01T00:00:00Z".parse().expect("time"),
            },
            &announce_order,
        )
        .await
        .expect("reserve");
    stores
        .orders
        .set_status_announcing(order.id, 0, OrderStatus::Cancelled, &announce_order)
        .await
        .expect("cancel");
    let subjects: Vec<String> = stores
        .outbox
        .pending(10)
        .await
        .expect("pending")
        .into_iter()
        .filter(|e| e.key == format!("order:{}", order.id))
        .map(|e| e.message.subject)
        .collect();
    assert_eq!(subjects, vec!["order:created", "order:cancelled"]);
}

pub async fn a_rejected_change_commits_no_event(factory: &dyn StoreFactory) {
    let stores = factory.stores().await;
    let created = announced_concert(&stores).await;
    let before = pending(&*stores.outbox).await;
    // A stale version, a taken id, a held ticket, a forbidden transition: nothing announced.
    let stale = stores
        .tickets
        .update_announcing(
            &Ticket {
                version: 7,
                ..created.clone()
            },
            &announce_ticket,
        )
        .await;
    assert!(matches!(stale, Err(StoreError::VersionConflict { .. })));
    let taken = stores
        .tickets
        .create_announcing(created.clone(), &announce_ticket)
        .await;
    assert!(matches!(taken, Err(StoreError::AlreadyExists { .. })));
    let replica = replicated_ticket(&stores, "replica").await;
    let new_order = |id| NewOrder {
        id,
        user_id: Id::new(),
        ticket_id: replica.id,
        expires_at: "2030-01-01T00:00:00Z".parse().expect("time"),
    };
    let first = stores
        .orders
        .reserve_announcing(new_order(Id::new()), &announce_order)
        .await
        .expect("reserve");
    let held = stores
        .orders
        .reserve_announcing(new_order(Id::new()), &announce_order)
        .await;
    assert!(
        matches!(&held, Err(e) if matches!(ReservationError::of(e), Some(ReservationError::TicketReserved { .. })))
    );
    stores
        .orders
        .set_status_announcing(first.id, 0, OrderStatus::Complete, &announce_order)
        .await
        .expect("complete");
    let forbidden = stores
        .orders
        .set_status_announcing(first.id, 1, OrderStatus::Cancelled, &announce_order)
        .await;
    assert!(
        matches!(&forbidden, Err(e) if matches!(ReservationError::of(e), Some(ReservationError::Transition(_))))
    );
    let after: Vec<(String, u64)> = pending(&*stores.outbox)
        .await
        .into_iter()
        .filter(|(key, _)| !key.starts_with("order:"))
        .collect();
    assert_eq!(after, before, "a rejected ticket change announces nothing");
    let order_events = pending(&*stores.outbox)
        .await
        .into_iter()
        .filter(|(key, _)| key.starts_with("order:"))
        .count();
    assert_eq!(
        order_events, 2,
        "created and complete, nothing for the rejected ones"
    );

    // An event that cannot be encoded aborts the change it announces.
    let fresh = ticket("concert");
    let refused = stores
        .tickets
        .create_announcing(fresh.clone(), &|_| {
            Err(PublishError::Encode {
                subject: "ticket",
                source: serde_json::from_str::<u8>("x").expect_err("not json"),
            })
        })
        .await;
    assert!(matches!(refused, Err(StoreError::Encode(_))));
    assert!(
        stores.tickets.get(fresh.id).await.is_err(),
        "nothing was written"
    );
}

pub async fn events_of_one_record_are_pending_in_commit_order(factory: &dyn StoreFactory) {
    let stores = factory.stores().await;
    let tickets = created_tickets(&stores, 4).await;
    // Each ticket changed ten times by a writer of its own, the four writers at once.
    update_each(&stores, &tickets, 10, Duration::ZERO).await;
    assert_pending_in_order(&*stores.outbox, 4, 10).await;
}

pub async fn the_relay_publishes_everything_once_and_empties_the_outbox(
    factory: &dyn StoreFactory,
) {
    let stores = factory.stores().await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        let created = announced_concert(&stores).await;
        stores
            .tickets
            .update_announcing(&created, &announce_ticket)
            .await
            .expect("update");
        ids.push(created.id);
    }
    // A relay stopped after publishing, before forgetting: the next round publishes again
    // with the same ids, and the broker keeps one copy.
    let stored = a_round_after_a_stopped_relay(&*stores.outbox).await;
    for id in ids {
        let versions: Vec<u64> = stored
            .iter()
            .filter(|m| {
                m.message_id
                    .as_deref()
                    .is_some_and(|m| m.contains(&id.to_string()))
            })
            .map(version_of)
            .collect();
        assert_eq!(versions, vec![0, 1], "per-record order");
    }
}

pub async fn two_relays_at_once_keep_per_record_order(factory: &dyn StoreFactory) {
    let stores = factory.stores().await;
    let bus = Arc::new(RecordingBus::default());
    let relays = two_relays(&stores.outbox, &bus);
    let tickets = created_tickets(&stores, 4).await;
    update_each(&stores, &tickets, 8, Duration::from_millis(5)).await;
    let stored = stored_once(&bus, 36, relays).await;
    for t in &tickets {
        let versions: Vec<u64> = stored
            .iter()
            .filter(|m| {
                m.message_id
                    .as_deref()
                    .is_some_and(|m| m.contains(&t.id.to_string()))
            })
            .map(version_of)
            .collect();
        assert_eq!(versions, (0..=8).collect::<Vec<u64>>(), "per-record order");
    }
    assert!(pending(&*stores.outbox).await.is_empty());
}

pub async fn a_commit_wakes_the_relay(factory: &dyn StoreFactory) {
    let stores = factory.stores().await;
    announced_concert(&stores).await;
    tokio::time::timeout(Duration::from_secs(5), stores.outbox.changed())
        .await
        .expect("a commit in this process wakes the relay at once");
}

pub async fn a_listener_change_records_its_order_in_the_same_unit(factory: &dyn StoreFactory) {
    let stores = factory.stores().await;
    let created = announced_concert(&stores).await;
    let order = OrderReplica {
        id: Id::new(),
        ticket_id: created.id,
        status: OrderStatus::Created,
        version: 0,
    };
    let reserved = stores
        .tickets
        .update_for_order(
            &Ticket {
                order_id: Some(order.id),
                ..created.clone()
            },
            &order,
            &announce_ticket,
        )
        .await
        .expect("reserve");
    assert_eq!(reserved.version, 1);
    assert_eq!(reserved.order_id, Some(order.id));
    assert_eq!(
        stores.order_replicas.find(&order.id).await.expect("find"),
        Some(order.clone())
    );
    assert_eq!(pending(&*stores.outbox).await.len(), 2);

    // A stale ticket version: nothing is written, neither the ticket, its event nor the order.
    let later = OrderReplica {
        status: OrderStatus::Cancelled,
        version: 1,
        ..order.clone()
    };
    let stale = stores
        .tickets
        .update_for_order(&created, &later, &announce_ticket)
        .await;
    assert!(matches!(stale, Err(StoreError::VersionConflict { .. })));
    assert_eq!(
        stores.order_replicas.find(&order.id).await.expect("find"),
        Some(order.clone())
    );
    assert_eq!(pending(&*stores.outbox).await.len(), 2);

    // The order replica already at a later version is left as it is.
    stores.order_replicas.apply(&later).await.expect("apply");
    let released = stores
        .tickets
        .update_for_order(
            &Ticket {
                order_id: None,
                ..reserved
            },
            &order,
            &announce_ticket,
        )
        .await
        .expect("release");
    assert_eq!(released.version, 2);
    assert_eq!(
        stores.order_replicas.find(&order.id).await.expect("find"),
        Some(later)
    );
}
