//! The web client alone, as deployed behind an ingress that routes `/api/...` to the services:
//! `PORT=3000 cargo run -p ticketing --bin web`.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    ticketing_common::service::main::<ticketing::Web>(ticketing::WebSettings::parse).await
}
