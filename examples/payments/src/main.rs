//! The payments service, alone:
//! `JWT_KEY=... PAYMENT_PROVIDER=fake cargo run -p ticketing-payments`.

use clap::Parser;
use ticketing_payments::configuration::Settings;
use ticketing_payments::startup::Payments;

/// The binary's allocator (docs/operating.md, "Memory"): mimalloc returns freed memory.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    ticketing_common::service::main::<Payments>(Settings::parse).await
}
