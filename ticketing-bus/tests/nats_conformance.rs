//! The whole bus conformance suite against a real nats-server with JetStream (`NATS_URL`,
//! default `nats://127.0.0.1:4222`). Each case gets its own streams and subject prefix, so
//! cases run in parallel against one server.
#![cfg(feature = "nats")]

mod support;

ticketing_core::bus_conformance_tests!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    factory = support::NatsAt::new(support::nats_url(), "CONF").await
);
