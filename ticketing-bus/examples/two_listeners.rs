//! Two queue groups listening to the same events over the in-memory bus.
//!
//! `cargo run -p ticketing-bus --example two_listeners`
#![allow(clippy::print_stdout)]

use std::sync::Arc;

use async_trait::async_trait;
use ticketing_bus::memory::InMemoryBus;
use ticketing_core::ticketing::events::TicketCreated;
use ticketing_core::{HandlerError, Id, Listener, MessageContext, Publisher, spawn_listener};

struct Replicate;

#[async_trait]
impl Listener for Replicate {
    type Event = TicketCreated;
    fn queue_group(&self) -> &str {
        "orders-service"
    }
    async fn on_message(
        &self,
        t: TicketCreated,
        ctx: &MessageContext<'_>,
    ) -> Result<(), HandlerError> {
        println!(
            "[orders-service] replicate ticket {} v{} {:?} at {} (attempt {})",
            t.id,
            t.version,
            t.title,
            t.price,
            ctx.attempt()
        );
        Ok(())
    }
}

struct Audit;

#[async_trait]
impl Listener for Audit {
    type Event = TicketCreated;
    fn queue_group(&self) -> &str {
        "audit"
    }
    async fn on_message(
        &self,
        t: TicketCreated,
        ctx: &MessageContext<'_>,
    ) -> Result<(), HandlerError> {
        if ctx.attempt() == 1 && t.title.contains("flaky") {
            return Err(HandlerError::retry("audit log busy"));
        }
        println!(
            "[audit]          ticket {} listed by {} (attempt {})",
            t.id,
            t.user_id,
            ctx.attempt()
        );
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let bus = InMemoryBus::new();
    let dyn_bus = bus.as_dyn();
    let replicate = spawn_listener(&dyn_bus, Replicate).await?;
    let audit = spawn_listener(&dyn_bus, Audit).await?;
    let publisher = Publisher::<TicketCreated>::new(Arc::clone(&dyn_bus));
    let seller = Id::new();
    for (title, price) in [
        ("concert", "20"),
        ("flaky show", "35.50"),
        ("opera", "99.99"),
    ] {
        publisher
            .publish(&TicketCreated {
                id: Id::new(),
                version: 0,
                title: title.into(),
                price: price.parse()?,
                user_id: seller,
            })
            .await?;
    }
    bus.settled().await;
    for (subject, group, stats) in bus.groups() {
        println!(
            "{group:>15} on {subject}: delivered {}, acked {}, retried {}",
            stats.delivered, stats.acked, stats.nacked
        );
    }
    replicate.stop().await;
    audit.stop().await;
    Ok(())
}
