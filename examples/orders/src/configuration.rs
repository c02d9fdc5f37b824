//! Settings of the orders service: the common options plus the expiration window.

use std::time::Duration;

use ticketing_common::CommonArgs;

/// The orders service's settings, from the environment and flags.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "orders",
    about = "The orders service of the ticketing system",
    version
)]
pub struct Settings {
    /// Options every service takes.
    #[command(flatten)]
    pub common: CommonArgs,
    /// How long an order stays open, in seconds.
    #[arg(long, env = "EXPIRATION_WINDOW_SECONDS", default_value_t = 15 * 60)]
    pub expiration_window_seconds: u64,
}

impl Settings {
    /// The expiration window.
    pub fn expiration_window(&self) -> Duration {
        Duration::from_secs(self.expiration_window_seconds)
    }
}
