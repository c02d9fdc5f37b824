//! The auth service, alone: `JWT_KEY=... cargo run -p ticketing-auth`.

use clap::Parser;
use ticketing_auth::configuration::Settings;
use ticketing_auth::startup::Application;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    ticketing_common::server::exit_code(run().await)
}

async fn run() -> anyhow::Result<()> {
    ticketing_common::telemetry::init_tracing();
    let settings = Settings::parse();
    let app = Application::build(settings).await?;
    tracing::info!(port = app.port(), "auth service listening");
    app.run_until_stopped().await?;
    Ok(())
}
