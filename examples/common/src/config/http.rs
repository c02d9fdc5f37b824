//! HTTP timeouts and limits.

#[allow(clippy::wildcard_imports)]
use super::*;

/// HTTP timeouts, in seconds.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct HttpArgs {
    /// A client has this long to send a request's headers; then the connection is closed.
    #[arg(long, env = "HEADER_TIMEOUT_SECONDS", default_value_t = 10)]
    pub header_timeout_seconds: u64,
    /// A client has this long to send a request's body; then the answer is 408.
    #[arg(long, env = "BODY_TIMEOUT_SECONDS", default_value_t = 10)]
    pub body_timeout_seconds: u64,
    /// A whole request may take this long; then the answer is 408.
    #[arg(long, env = "REQUEST_TIMEOUT_SECONDS", default_value_t = 30)]
    pub request_timeout_seconds: u64,
    /// After SIGTERM, requests in flight have this long to finish before open connections
    /// are closed; the listeners then settle and the bus is flushed. Keep it below the
    /// orchestrator's grace period (Kubernetes: 30 s).
    #[arg(long, env = "SHUTDOWN_DEADLINE_SECONDS", default_value_t = 20)]
    pub shutdown_deadline_seconds: u64,
    /// After SIGTERM, the service first answers `/readyz` with 503 and keeps serving for this
    /// long, so the orchestrator takes it out of its endpoints before it stops accepting
    /// connections (the manifests set 5).
    #[arg(long, env = "SHUTDOWN_DELAY_SECONDS", default_value_t = 0)]
    pub shutdown_delay_seconds: u64,
}

impl Default for HttpArgs {
    fn default() -> Self {
        HttpArgs {
            header_timeout_seconds: 10,
            body_timeout_seconds: 10,
            request_timeout_seconds: 30,
            shutdown_deadline_seconds: 20,
            shutdown_delay_seconds: 0,
        }
    }
}

impl HttpArgs {
    /// The limits the server applies.
    pub fn limits(&self) -> crate::server::HttpLimits {
        let secs = |s: u64| Duration::from_secs(s.max(1));
        crate::server::HttpLimits {
            header_timeout: secs(self.header_timeout_seconds),
            body_timeout: secs(self.body_timeout_seconds),
            request_timeout: secs(self.request_timeout_seconds),
            shutdown_deadline: Duration::from_secs(self.shutdown_deadline_seconds),
            shutdown_delay: Duration::from_secs(self.shutdown_delay_seconds),
        }
    }
}
