//! The tickets service, alone: `JWT_KEY=... cargo run -p ticketing-tickets`.

use clap::Parser;
use ticketing_tickets::configuration::Settings;
use ticketing_tickets::startup::Tickets;

/// The binary's allocator (docs/operating.md, "Memory"): mimalloc returns freed memory.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    ticketing_common::service::main::<Tickets>(Settings::parse).await
}
