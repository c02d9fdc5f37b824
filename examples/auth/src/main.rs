//! The auth service, alone: `JWT_KEY=... cargo run -p ticketing-auth`.

use clap::Parser;
use ticketing_auth::configuration::Settings;
use ticketing_auth::startup::Auth;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    ticketing_common::service::main::<Auth>(Settings::parse).await
}
