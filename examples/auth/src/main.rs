//! The auth service, alone: `JWT_KEY=... cargo run -p ticketing-auth`.

use clap::Parser;
use ticketing_auth::configuration::Settings;
use ticketing_auth::startup::Auth;

/// The binary's allocator (docs/operating.md, "Memory"): mimalloc returns freed memory.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    ticketing_common::service::main::<Auth>(Settings::parse).await
}
