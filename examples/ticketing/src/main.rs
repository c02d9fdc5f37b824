//! The whole ticketing system in one process: `JWT_KEY=dev-secret cargo run -p ticketing`.

#![allow(clippy::print_stdout)]

use clap::Parser;
use ticketing::{Settings, TicketingApp};

/// The binary's allocator (docs/operating.md, "Memory"): mimalloc returns freed memory.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let result = run().await;
    ticketing_common::telemetry::shutdown_tracing();
    ticketing_common::server::exit_code(result)
}

async fn run() -> anyhow::Result<()> {
    ticketing_common::telemetry::init_tracing();
    let app = TicketingApp::build(Settings::parse()).await?;
    println!(
        "ticketing listening on http://localhost:{} (web client at /, API under /api)",
        app.port()
    );
    app.run_until_stopped().await?;
    Ok(())
}
