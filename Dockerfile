# syntax=docker/dockerfile:1
#
# One image with every binary of the system: auth, tickets, orders, payments, expiration, web
# (the web client alone) and ticketing (all in one). Each Deployment picks its binary with
# `command`. One image rather than one per service because the services share almost all of
# their dependency graph: one build compiles it once, one cached layer serves all, and the
# binaries together add a few tens of megabytes to a distroless base.
#
# Dependencies are compiled in their own cached layer (cargo-chef): a change to the code
# rebuilds only the workspace's crates.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS chef
RUN cargo install cargo-chef --locked --version ^0.1
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json
COPY . .
# With OpenTelemetry export (on when OTEL_EXPORTER_OTLP_ENDPOINT is set).
RUN cargo build --release --locked --features ticketing-common/otel \
        --bin auth --bin tickets --bin orders --bin payments --bin expiration \
        --bin web --bin ticketing

# glibc, libgcc and CA certificates, no shell; user 65532 (nonroot).
FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
COPY --from=builder /src/target/release/auth /usr/local/bin/auth
COPY --from=builder /src/target/release/tickets /usr/local/bin/tickets
COPY --from=builder /src/target/release/orders /usr/local/bin/orders
COPY --from=builder /src/target/release/payments /usr/local/bin/payments
COPY --from=builder /src/target/release/expiration /usr/local/bin/expiration
COPY --from=builder /src/target/release/web /usr/local/bin/web
COPY --from=builder /src/target/release/ticketing /usr/local/bin/ticketing
USER 65532:65532
ENV PORT=3000 HOST=0.0.0.0 LOG_FORMAT=json
EXPOSE 3000
ENTRYPOINT ["/usr/local/bin/ticketing"]
