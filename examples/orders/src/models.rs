//! The order as the API shows it, and the events it becomes.

use chrono::{DateTime, Utc};
use serde::Serialize;
use ticketing_common::{ApiError, JsonBody};
use ticketing_core::ticketing::Price;
use ticketing_core::ticketing::events::{
    OrderCancelled, OrderCancelledTicket, OrderCompleted, OrderCreated, OrderCreatedTicket,
};
use ticketing_core::ticketing::reservation::OrderStatus;
use ticketing_core::ticketing::store::{Announce, Order, OrderStore, TicketReplica};
use ticketing_core::{Id, OutgoingMessage, PublishError, StoreError, Version, outbox};

/// The ticket inside an order's JSON: `{id, title, price, version}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(as = OrderTicket)]
pub struct TicketJson {
    /// Id.
    #[schema(value_type = String, pattern = "^[0-9a-f]{24}$")]
    pub id: Id,
    /// Title.
    pub title: String,
    /// Price.
    #[schema(value_type = f64)]
    pub price: Price,
    /// Version of the replica.
    #[schema(value_type = u64)]
    pub version: Version,
}

/// The body of `POST /api/orders`.
#[derive(Debug, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderRequest {
    /// The ticket to order.
    #[schema(pattern = "^[0-9a-f]{24}$")]
    pub ticket_id: String,
}

/// Order JSON: `{id, userId, status, expiresAt, version, ticket}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Order)]
pub struct OrderJson {
    /// Id.
    #[schema(value_type = String, pattern = "^[0-9a-f]{24}$")]
    pub id: Id,
    /// The buyer.
    #[schema(value_type = String, pattern = "^[0-9a-f]{24}$")]
    pub user_id: Id,
    /// Status: `created`, `cancelled`, `awaiting:payment` or `complete`.
    #[schema(value_type = String)]
    pub status: OrderStatus,
    /// Expiry, ISO-8601 UTC with milliseconds.
    #[serde(with = "ticketing_core::event::iso_millis")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: DateTime<Utc>,
    /// Version.
    #[schema(value_type = u64)]
    pub version: Version,
    /// The ticket.
    pub ticket: TicketJson,
}

impl From<TicketReplica> for TicketJson {
    fn from(t: TicketReplica) -> Self {
        TicketJson {
            id: t.id,
            title: t.title,
            price: t.price,
            version: t.version,
        }
    }
}

impl From<Order> for OrderJson {
    fn from(o: Order) -> Self {
        OrderJson {
            id: o.id,
            user_id: o.user_id,
            status: o.status,
            expires_at: o.expires_at,
            version: o.version,
            ticket: o.ticket.into(),
        }
    }
}

/// A valid order body: `{ticketId}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderInput {
    /// The ticket to reserve.
    pub ticket_id: Id,
}

impl TryFrom<&JsonBody> for OrderInput {
    type Error = ApiError;

    /// A missing or malformed id is a 400 `TicketId must be provided`.
    fn try_from(body: &JsonBody) -> Result<Self, ApiError> {
        body.str("ticketId")
            .and_then(|id| Id::parse(id.trim()).ok())
            .map(|ticket_id| OrderInput { ticket_id })
            .ok_or_else(|| ApiError::field("ticketId", "TicketId must be provided"))
    }
}

/// `order:created` for a new order.
pub fn created_event(o: &Order) -> OrderCreated {
    OrderCreated {
        id: o.id,
        version: o.version,
        status: o.status,
        user_id: o.user_id,
        expires_at: o.expires_at,
        ticket: OrderCreatedTicket {
            id: o.ticket.id,
            price: o.ticket.price,
        },
    }
}

/// `order:cancelled` for a cancelled order.
pub fn cancelled_event(o: &Order) -> OrderCancelled {
    OrderCancelled {
        id: o.id,
        version: o.version,
        ticket: OrderCancelledTicket { id: o.ticket.id },
    }
}

/// Moves `order` to `status` (version + 1 if its version is still the one read), committing
/// that status's event with the change: `order:cancelled` or `order:completed`.
pub async fn change_status(
    orders: &dyn OrderStore,
    order: &Order,
    status: OrderStatus,
) -> Result<Order, StoreError> {
    let announce: Announce<'_, Order> = match status {
        OrderStatus::Cancelled => &announce_cancelled,
        OrderStatus::Complete => &announce_completed,
        OrderStatus::Created | OrderStatus::AwaitingPayment => &|_| Ok(Vec::new()),
    };
    orders
        .set_status_announcing(order.id, order.version, status, announce)
        .await
}

/// Announces a new order: `order:created`, committed with it.
pub fn announce_created(o: &Order) -> Result<Vec<OutgoingMessage>, PublishError> {
    outbox::announce(&created_event(o))
}

/// Announces a cancellation: `order:cancelled`, committed with it.
pub fn announce_cancelled(o: &Order) -> Result<Vec<OutgoingMessage>, PublishError> {
    outbox::announce(&cancelled_event(o))
}

/// Announces a payment: `order:completed`, committed with it.
pub fn announce_completed(o: &Order) -> Result<Vec<OutgoingMessage>, PublishError> {
    outbox::announce(&OrderCompleted {
        id: o.id,
        version: o.version,
        ticket: OrderCancelledTicket { id: o.ticket.id },
    })
}
