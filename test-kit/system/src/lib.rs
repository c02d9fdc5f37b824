//! System tests of the whole ticketing system, driven from outside as its users and operators
//! meet it; the tests are in `tests/`, this library is empty.
//!
//! - `crash`: the built service binaries, two processes each, killed every 0.9 s under load,
//!   with the broker stopped for 8 s, on NATS + PostgreSQL and NATS + MongoDB, and a
//!   three-server JetStream cluster losing its stream leader; the services must agree after.
//! - `verify`: the load generator's consistency check, silent on agreeing services and naming
//!   each disagreement planted behind their backs.
//! - `fuzz`: schemathesis against the OpenAPI document of the running all-in-one app.
//! - `deploy`: the Kubernetes manifests, the Dockerfile and the dev loop against the code.
//! - `web_client`: the web client in headless Chromium.
//!
//! `scripts/test` installs and starts what they need; `docs/testing.md` tells how to run one.
