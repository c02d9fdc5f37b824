//! The web client alone, as deployed behind an ingress that routes `/api/...` to the services:
//! `PORT=3000 cargo run -p ticketing --bin web`.

use clap::Parser;

/// The binary's allocator (docs/operating.md, "Memory"): mimalloc returns freed memory.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    ticketing_common::service::main::<ticketing::Web>(ticketing::WebSettings::parse).await
}
