//! Settings of the tickets service: the common options (`PORT`, `JWT_KEY`, `NATS_URL`,
//! `DATABASE_URL` or `MONGO_URI`, ...).

use ticketing_common::CommonArgs;

/// The tickets service's settings, from the environment and flags.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "tickets",
    about = "The tickets service of the ticketing system",
    version
)]
pub struct Settings {
    /// Options every service takes.
    #[command(flatten)]
    pub common: CommonArgs,
}
