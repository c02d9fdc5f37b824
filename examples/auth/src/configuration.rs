//! Settings of the auth service: the common options (`PORT`, `JWT_KEY`, `DATABASE_URL` or
//! `MONGO_URI`, ...).

use crate::guard::GuardArgs;

ticketing_common::service_settings! {
    /// The auth service's settings, from the environment and flags.
    pub struct Settings("auth", "The auth service of the ticketing system") {
        /// Hashing bound and sign-in limits.
        #[command(flatten)]
        pub guards: GuardArgs,
    }
}
