//! The seven events of the ticketing system, with the original system's JSON payloads.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{OrderStatus, Price};
use crate::Id;
use crate::event::{Event, iso_millis};
use crate::version::Version;

/// The subjects of the ticketing system, with the original system's wire names.
pub mod subjects {
    /// `ticket:created`
    pub const TICKET_CREATED: &str = "ticket:created";
    /// `ticket:updated`
    pub const TICKET_UPDATED: &str = "ticket:updated";
    /// `order:created`
    pub const ORDER_CREATED: &str = "order:created";
    /// `order:cancelled`
    pub const ORDER_CANCELLED: &str = "order:cancelled";
    /// `expiration:complete`
    pub const EXPIRATION_COMPLETE: &str = "expiration:complete";
    /// `payment:created`
    pub const PAYMENT_CREATED: &str = "payment:created";
    /// `order:completed` (new: the original bumped the version silently)
    pub const ORDER_COMPLETED: &str = "order:completed";
}

/// The queue groups of the ticketing system. A queue group is also the durable name of its
/// consumer: renaming one makes a new group that replays the whole history.
pub mod queue_groups {
    /// The tickets service.
    pub const TICKETS_SERVICE: &str = "tickets-service";
    /// The orders service.
    pub const ORDERS_SERVICE: &str = "orders-service";
    /// The expiration service.
    pub const EXPIRATION_SERVICE: &str = "expiration-service";
    /// The payments service.
    pub const PAYMENTS_SERVICE: &str = "payments-service";
}

fn versioned_id(subject: &str, id: &Id, version: Version) -> String {
    format!("{subject}:{id}:{version}")
}

/// `ticket:created` — published by the tickets service when a ticket is listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TicketCreated {
    /// The ticket id.
    pub id: Id,
    /// Always 0.
    pub version: Version,
    /// The title.
    pub title: String,
    /// The price.
    pub price: Price,
    /// The seller.
    pub user_id: Id,
}

/// `ticket:updated` — published by the tickets service on edit, reserve and release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TicketUpdated {
    /// The ticket id.
    pub id: Id,
    /// The new version.
    pub version: Version,
    /// The title.
    pub title: String,
    /// The price.
    pub price: Price,
    /// The seller.
    pub user_id: Id,
    /// The order holding the ticket; absent when the ticket is free.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<Id>,
}

/// The ticket inside an `order:created` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderCreatedTicket {
    /// The ticket id.
    pub id: Id,
    /// The price at the time of the order.
    pub price: Price,
}

/// `order:created` — published by the orders service when a ticket is reserved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderCreated {
    /// The order id.
    pub id: Id,
    /// Always 0.
    pub version: Version,
    /// Always `created`.
    pub status: OrderStatus,
    /// The buyer.
    pub user_id: Id,
    /// When the order expires (ISO-8601 UTC, milliseconds).
    #[serde(with = "iso_millis")]
    pub expires_at: DateTime<Utc>,
    /// The ticket.
    pub ticket: OrderCreatedTicket,
}

/// The ticket inside an `order:cancelled` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderCancelledTicket {
    /// The ticket id.
    pub id: Id,
}

/// `order:cancelled` — published by the orders service on cancel or expiry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderCancelled {
    /// The order id.
    pub id: Id,
    /// The new version of the order.
    pub version: Version,
    /// The ticket it held.
    pub ticket: OrderCancelledTicket,
}

/// `order:completed` — published by the orders service when an order is paid for (new: the
/// original completed orders silently, so every replica of the order fell behind).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderCompleted {
    /// The order id.
    pub id: Id,
    /// The new version of the order.
    pub version: Version,
    /// The ticket it holds, for good.
    pub ticket: OrderCancelledTicket,
}

/// `expiration:complete` — published by the expiration service when an order's window closes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExpirationComplete {
    /// The order that expired.
    pub order_id: Id,
}

/// `payment:created` — published by the payments service when a charge succeeded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentCreated {
    /// The payment id.
    pub id: Id,
    /// The order paid for.
    pub order_id: Id,
    /// The payment provider's charge id.
    pub stripe_id: String,
}

/// `impl Event`: the subject, the message id (of a versioned record: subject, id, version; else
/// subject and id) and the ordering key (the record the event is about).
macro_rules! event {
    ($event:ty, $subject:expr, versioned, key: $key:ident) => {
        event!(@impl $event, $subject, |e: &$event| versioned_id(<$event>::SUBJECT, &e.id, e.version), $key);
    };
    ($event:ty, $subject:expr, once by $id:ident, key: $key:ident) => {
        event!(@impl $event, $subject, |e: &$event| format!("{}:{}", <$event>::SUBJECT, e.$id), $key);
    };
    (@impl $event:ty, $subject:expr, $message_id:expr, $key:ident) => {
        impl Event for $event {
            const SUBJECT: &'static str = $subject;
            fn message_id(&self) -> String {
                ($message_id)(self)
            }
            fn key(&self) -> Option<String> {
                Some(self.$key.to_string())
            }
        }
    };
}

event!(TicketCreated, subjects::TICKET_CREATED, versioned, key: id);
event!(TicketUpdated, subjects::TICKET_UPDATED, versioned, key: id);
event!(OrderCreated, subjects::ORDER_CREATED, versioned, key: id);
event!(OrderCancelled, subjects::ORDER_CANCELLED, versioned, key: id);
event!(OrderCompleted, subjects::ORDER_COMPLETED, versioned, key: id);
event!(ExpirationComplete, subjects::EXPIRATION_COMPLETE, once by order_id, key: order_id);
// A payment is about its order: the orders service applies it to the order.
event!(PaymentCreated, subjects::PAYMENT_CREATED, once by id, key: order_id);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn id(n: u8) -> Id {
        Id::from_bytes([n; 12])
    }

    fn round_trip<E: Event + PartialEq + std::fmt::Debug>(event: &E, expected: Value) {
        let json = serde_json::to_value(event).unwrap();
        assert_eq!(json, expected);
        assert_eq!(&serde_json::from_value::<E>(json).unwrap(), event);
    }

    #[test]
    fn ticket_created_payload() {
        round_trip(
            &TicketCreated {
                id: id(1),
                version: 0,
                title: "concert".into(),
                price: "19.99".parse().unwrap(),
                user_id: id(2),
            },
            json!({"id": "010101010101010101010101", "version": 0, "title": "concert",
                   "price": 19.99, "userId": "020202020202020202020202"}),
        );
    }

    #[test]
    fn ticket_updated_payload_with_and_without_order_id() {
        let mut event = TicketUpdated {
            id: id(1),
            version: 3,
            title: "concert".into(),
            price: "20".parse().unwrap(),
            user_id: id(2),
            order_id: Some(id(3)),
        };
        round_trip(
            &event,
            json!({"id": "010101010101010101010101", "version": 3, "title": "concert",
                   "price": 20, "userId": "020202020202020202020202",
                   "orderId": "030303030303030303030303"}),
        );
        event.order_id = None;
        round_trip(
            &event,
            json!({"id": "010101010101010101010101", "version": 3, "title": "concert",
                   "price": 20, "userId": "020202020202020202020202"}),
        );
    }

    #[test]
    fn order_created_payload() {
        round_trip(
            &OrderCreated {
                id: id(4),
                version: 0,
                status: OrderStatus::Created,
                user_id: id(2),
                expires_at: "2026-01-01T00:15:00.123Z".parse().unwrap(),
                ticket: OrderCreatedTicket {
                    id: id(1),
                    price: "10.5".parse().unwrap(),
                },
            },
            json!({"id": "040404040404040404040404", "version": 0, "status": "created",
                   "userId": "020202020202020202020202", "expiresAt": "2026-01-01T00:15:00.123Z",
                   "ticket": {"id": "010101010101010101010101", "price": 10.5}}),
        );
    }

    #[test]
    fn order_cancelled_payload() {
        round_trip(
            &OrderCancelled {
                id: id(4),
                version: 1,
                ticket: OrderCancelledTicket { id: id(1) },
            },
            json!({"id": "040404040404040404040404", "version": 1,
                   "ticket": {"id": "010101010101010101010101"}}),
        );
    }

    #[test]
    fn expiration_complete_payload() {
        round_trip(
            &ExpirationComplete { order_id: id(4) },
            json!({"orderId": "040404040404040404040404"}),
        );
    }

    #[test]
    fn payment_created_payload() {
        round_trip(
            &PaymentCreated {
                id: id(5),
                order_id: id(4),
                stripe_id: "ch_123".into(),
            },
            json!({"id": "050505050505050505050505", "orderId": "040404040404040404040404",
                   "stripeId": "ch_123"}),
        );
    }

    #[test]
    fn subjects_keep_the_original_wire_names() {
        assert_eq!(TicketCreated::SUBJECT, "ticket:created");
        assert_eq!(TicketUpdated::SUBJECT, "ticket:updated");
        assert_eq!(OrderCreated::SUBJECT, "order:created");
        assert_eq!(OrderCancelled::SUBJECT, "order:cancelled");
        assert_eq!(ExpirationComplete::SUBJECT, "expiration:complete");
        assert_eq!(PaymentCreated::SUBJECT, "payment:created");
        assert_eq!(OrderCompleted::SUBJECT, "order:completed");
    }

    #[test]
    fn message_ids_are_deterministic_per_record_and_version() {
        let cancelled = |version| OrderCancelled {
            id: id(4),
            version,
            ticket: OrderCancelledTicket { id: id(1) },
        };
        assert_eq!(cancelled(1).message_id(), cancelled(1).message_id());
        assert_ne!(cancelled(1).message_id(), cancelled(2).message_id());
        assert_eq!(
            cancelled(1).message_id(),
            "order:cancelled:040404040404040404040404:1"
        );
    }

    #[test]
    fn an_order_created_from_the_original_system_is_read() {
        // JavaScript's toISOString output and an integer price, as the Node.js service sends.
        let original = r#"{"id":"5f1a2b3c4d5e6f7a8b9c0d1e","version":0,"status":"created",
            "userId":"5f1a2b3c4d5e6f7a8b9c0d1f","expiresAt":"2020-07-24T10:15:00.000Z",
            "ticket":{"id":"5f1a2b3c4d5e6f7a8b9c0d20","price":20}}"#;
        let event: OrderCreated = serde_json::from_str(original).unwrap();
        assert_eq!(event.ticket.price.cents(), 2000);
        assert_eq!(
            serde_json::to_value(&event).unwrap()["expiresAt"],
            "2020-07-24T10:15:00.000Z"
        );
    }
}
