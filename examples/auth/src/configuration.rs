//! Settings of the auth service: the common options (`PORT`, `JWT_KEY`, `DATABASE_URL` or
//! `MONGO_URI`, ...).

use ticketing_common::CommonArgs;

use crate::guard::GuardArgs;

/// The auth service's settings, from the environment and flags.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "auth",
    about = "The auth service of the ticketing system",
    version
)]
pub struct Settings {
    /// Options every service takes.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Hashing bound and sign-in limits.
    #[command(flatten)]
    pub guards: GuardArgs,
}
