//! The tickets service, alone: `JWT_KEY=... cargo run -p ticketing-tickets`.

use clap::Parser;
use ticketing_tickets::configuration::Settings;
use ticketing_tickets::startup::Application;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    ticketing_common::server::exit_code(run().await)
}

async fn run() -> anyhow::Result<()> {
    ticketing_common::telemetry::init_tracing();
    let app = Application::build(Settings::parse()).await?;
    tracing::info!(port = app.port(), "tickets service listening");
    app.run_until_stopped().await?;
    Ok(())
}
