//! The expiration service, alone: `NATS_URL=nats://127.0.0.1:4222 cargo run -p ticketing-expiration`.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    ticketing_common::telemetry::init_tracing();
    ticketing_common::server::exit_code(
        ticketing_expiration::run(ticketing_expiration::Settings::parse()).await,
    )
}
