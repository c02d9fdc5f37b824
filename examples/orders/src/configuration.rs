//! Settings of the orders service: the common options plus the expiration window.

use std::time::Duration;

ticketing_common::service_settings! {
    /// The orders service's settings, from the environment and flags.
    pub struct Settings("orders", "The orders service of the ticketing system") {
        /// How long an order stays open, in seconds.
        #[arg(long, env = "EXPIRATION_WINDOW_SECONDS", default_value_t = 15 * 60)]
        pub expiration_window_seconds: u64,
    }
}

impl Settings {
    /// The expiration window.
    pub fn expiration_window(&self) -> Duration {
        Duration::from_secs(self.expiration_window_seconds)
    }
}
