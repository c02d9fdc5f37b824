//! The orders service, alone: `JWT_KEY=... cargo run -p ticketing-orders`.

use clap::Parser;
use ticketing_orders::configuration::Settings;
use ticketing_orders::startup::Orders;

/// The binary's allocator (docs/operating.md, "Memory"): mimalloc returns freed memory.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    ticketing_common::service::main::<Orders>(Settings::parse).await
}
