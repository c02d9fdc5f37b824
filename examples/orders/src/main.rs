//! The orders service, alone: `JWT_KEY=... cargo run -p ticketing-orders`.

use clap::Parser;
use ticketing_orders::configuration::Settings;
use ticketing_orders::startup::Orders;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    ticketing_common::service::main::<Orders>(Settings::parse).await
}
