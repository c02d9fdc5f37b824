//! The expiration service, alone: `NATS_URL=nats://127.0.0.1:4222 cargo run -p ticketing-expiration`.

use clap::Parser;

/// The binary's allocator (docs/operating.md, "Memory"): mimalloc returns freed memory.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    ticketing_common::service::main::<ticketing_expiration::Expiration>(
        ticketing_expiration::Settings::parse,
    )
    .await
}
