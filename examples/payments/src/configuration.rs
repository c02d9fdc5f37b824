//! Settings of the payments service: the common options plus the payment provider.

use std::sync::Arc;

use anyhow::Context;
use ticketing_common::config::Secret;

use crate::provider::{FakeProvider, PaymentProvider, StripeProvider};

/// Which provider charges cards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProviderKind {
    /// In memory, like Stripe's test mode for `tok_visa` and `tok_chargeDeclined`.
    Fake,
    /// Stripe's HTTP API; needs `STRIPE_KEY`.
    Stripe,
}

/// The provider options, shared with the all-in-one app.
#[derive(Debug, Clone, clap::Args)]
pub struct ProviderArgs {
    /// `fake` or `stripe`. Required by the payments service alone.
    #[arg(long = "payment-provider", env = "PAYMENT_PROVIDER", value_enum)]
    pub provider: Option<ProviderKind>,
    /// Stripe's secret key (`sk_test_…`); required with `stripe`.
    #[arg(long = "stripe-key", env = "STRIPE_KEY", hide_env_values = true)]
    pub stripe_key: Option<Secret>,
    /// Stripe's API base URL (a test server such as localstripe, in tests).
    #[arg(
        long = "stripe-base-url",
        env = "STRIPE_BASE_URL",
        default_value = "https://api.stripe.com"
    )]
    pub stripe_base_url: String,
    /// How often, in seconds, the repair looks for attempts left pending (a crash between the
    /// charge and the commit, a provider that did not answer); one is settled once it has been
    /// seen pending twice.
    #[arg(
        long = "payment-repair-seconds",
        env = "PAYMENT_REPAIR_SECONDS",
        default_value_t = 30,
        value_parser = clap::value_parser!(u64).range(1..=3600)
    )]
    pub repair_seconds: u64,
}

impl ProviderArgs {
    /// How often the repair looks.
    pub fn repair_every(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.repair_seconds)
    }

    /// The provider these options choose; `default` when none is named. `stripe` without a
    /// key is an error saying what to set.
    pub fn provider(
        &self,
        default: Option<ProviderKind>,
    ) -> anyhow::Result<Arc<dyn PaymentProvider>> {
        let kind = self.provider.or(default).context(
            "PAYMENT_PROVIDER must be set (environment variable or --payment-provider): \
             `fake` to take the test tokens, `stripe` (with STRIPE_KEY) to charge cards",
        )?;
        Ok(match kind {
            ProviderKind::Fake => Arc::new(FakeProvider::new()),
            ProviderKind::Stripe => {
                let key = self.stripe_key.as_ref().context(
                    "PAYMENT_PROVIDER=stripe needs STRIPE_KEY (a secret key, sk_test_… or sk_live_…)",
                )?;
                Arc::new(StripeProvider::new(&self.stripe_base_url, key.expose()))
            }
        })
    }
}

ticketing_common::service_settings! {
    /// The payments service's settings, from the environment and flags.
    pub struct Settings("payments", "The payments service of the ticketing system") {
        /// The payment provider.
        #[command(flatten)]
        pub provider: ProviderArgs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(args: &[&str]) -> Settings {
        let mut argv = vec![
            "payments",
            "--jwt-key",
            "a-jwt-key-of-at-least-32-bytes-long",
        ];
        argv.extend_from_slice(args);
        Settings::try_parse_from(argv).unwrap()
    }

    #[test]
    fn the_service_alone_needs_the_provider_named() {
        let error = parse(&[])
            .provider
            .provider(None)
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("PAYMENT_PROVIDER must be set"), "{error}");
        assert_eq!(
            parse(&["--payment-provider", "fake"])
                .provider
                .provider(None)
                .unwrap()
                .name(),
            "fake"
        );
        // The all-in-one app defaults to the fake.
        assert_eq!(
            parse(&[])
                .provider
                .provider(Some(ProviderKind::Fake))
                .unwrap()
                .name(),
            "fake"
        );
    }

    #[test]
    fn stripe_without_a_key_refuses_and_never_prints_one() {
        let error = parse(&["--payment-provider", "stripe"])
            .provider
            .provider(None)
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("needs STRIPE_KEY"), "{error}");
        let settings = parse(&[
            "--payment-provider",
            "stripe",
            "--stripe-key",
            "sk_test_secret",
        ]);
        assert_eq!(settings.provider.provider(None).unwrap().name(), "stripe");
        assert!(!format!("{settings:?}").contains("sk_test_secret"));
    }
}
