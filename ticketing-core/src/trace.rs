//! Trace context across the bus: a request's trace continues in the listeners of other
//! services.
//!
//! The context is the [W3C `traceparent`](https://www.w3.org/TR/trace-context/#traceparent-header)
//! (`00-<trace id>-<parent span id>-<flags>`). The services' HTTP layer takes it from the
//! request (or starts a trace) and runs the handler [in its scope](scope); every event encoded
//! in that scope ([`Publisher`](crate::Publisher), and so the outbox, which stores the headers
//! with the event) carries a `traceparent` header naming a child span; the listener runtime
//! reads the header of each delivery and runs the handler in the scope of a child of it, so
//! the events that handler publishes carry the same trace on. Logs carry the trace id in the
//! request's and the message's spans (`trace_id`), which is enough to follow a purchase across
//! the services' logs; an exporter (OpenTelemetry) can take the same ids.

use std::fmt;
use std::future::Future;
use std::sync::OnceLock;

/// The header carrying the context, in HTTP and in messages.
pub const TRACEPARENT: &str = "traceparent";

/// A position in a trace: the trace, the current span, and whether it is sampled.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceContext {
    trace_id: u128,
    span_id: u64,
    sampled: bool,
}

tokio::task_local! {
    static CURRENT: TraceContext;
}

impl TraceContext {
    /// A new trace (sampled), with a root span.
    pub fn root() -> Self {
        TraceContext {
            trace_id: nonzero_u128(),
            span_id: nonzero_u64(),
            sampled: true,
        }
    }

    /// A new span in the same trace, this one its parent.
    pub fn child(&self) -> Self {
        TraceContext {
            span_id: nonzero_u64(),
            ..*self
        }
    }

    /// Reads a `traceparent` value; `None` when it is not one (then start a new trace). A
    /// version other than `00` is read by its first four fields, as the specification asks.
    pub fn parse(header: &str) -> Option<Self> {
        let header = header.trim();
        let mut parts = header.split('-');
        let (version, trace, span, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let hex = |s: &str, len: usize| {
            s.len() == len
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        if !hex(version, 2) || version == "ff" || (version == "00" && parts.next().is_some()) {
            return None;
        }
        if !hex(trace, 32) || !hex(span, 16) || !hex(flags, 2) {
            return None;
        }
        let trace_id = u128::from_str_radix(trace, 16).ok()?;
        let span_id = u64::from_str_radix(span, 16).ok()?;
        let flags = u8::from_str_radix(flags, 16).ok()?;
        (trace_id != 0 && span_id != 0).then_some(TraceContext {
            trace_id,
            span_id,
            sampled: flags & 1 == 1,
        })
    }

    /// The `traceparent` value naming this span as the parent.
    pub fn header(&self) -> String {
        format!(
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id,
            self.span_id,
            u8::from(self.sampled)
        )
    }

    /// The trace id, 32 hex digits.
    pub fn trace_id(&self) -> String {
        format!("{:032x}", self.trace_id)
    }

    /// The span id, 16 hex digits.
    pub fn span_id(&self) -> String {
        format!("{:016x}", self.span_id)
    }

    /// The context of the task, if it runs in one.
    pub fn current() -> Option<Self> {
        CURRENT.try_with(|c| *c).ok()
    }

    /// A context of these ids (an exporter's span).
    pub fn from_parts(trace_id: u128, span_id: u64, sampled: bool) -> Option<Self> {
        (trace_id != 0 && span_id != 0).then_some(TraceContext {
            trace_id,
            span_id,
            sampled,
        })
    }

    /// The trace id as a number.
    pub fn trace_id_value(&self) -> u128 {
        self.trace_id
    }

    /// The span id as a number.
    pub fn span_id_value(&self) -> u64 {
        self.span_id
    }

    /// Whether the trace is sampled.
    pub fn sampled(&self) -> bool {
        self.sampled
    }

    /// The parent to name in an event encoded now: the exporter's current span when one is
    /// installed, else a child of the task's context; `None` outside any trace.
    pub fn for_outgoing() -> Option<Self> {
        EXPORTER
            .get()
            .and_then(|exporter| (exporter.context_of)(&tracing::Span::current()))
            .or_else(|| Self::current().map(|c| c.child()))
    }
}

/// How a span exporter (OpenTelemetry, in the services' `otel` feature) takes part: the SDK
/// asks it for the current span's context when it encodes an event, and gives it the context a
/// delivery carried when it opens the span of the handler.
#[derive(Debug, Clone, Copy)]
pub struct Exporter {
    /// The context of an exported span, if it is one.
    pub context_of: fn(&tracing::Span) -> Option<TraceContext>,
    /// Makes `parent` the parent of `span`.
    pub adopt: fn(&tracing::Span, &TraceContext),
}

static EXPORTER: OnceLock<Exporter> = OnceLock::new();

/// Installs the exporter, once per process; later calls are ignored.
pub fn install_exporter(exporter: Exporter) {
    let _ = EXPORTER.set(exporter);
}

/// Makes `parent` the parent of `span` for the installed exporter, if any.
pub fn adopt(span: &tracing::Span, parent: &TraceContext) {
    if let Some(exporter) = EXPORTER.get() {
        (exporter.adopt)(span, parent);
    }
}

/// The trace id to log for `span`: the exported span's when an exporter is installed, else
/// `fallback`'s.
pub fn trace_id_of(span: &tracing::Span, fallback: &TraceContext) -> String {
    EXPORTER
        .get()
        .and_then(|exporter| (exporter.context_of)(span))
        .unwrap_or(*fallback)
        .trace_id()
}

impl fmt::Debug for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.header())
    }
}

/// Runs `future` with `context` as the current trace context.
pub async fn scope<F: Future>(context: TraceContext, future: F) -> F::Output {
    scoped(context, future).await
}

/// `future` with `context` as its trace context, as a nameable future (for a tower service).
pub fn scoped<F: Future>(context: TraceContext, future: F) -> Scoped<F> {
    CURRENT.scope(context, future)
}

/// A future run in a trace context ([`scoped`]).
pub type Scoped<F> = tokio::task::futures::TaskLocalFuture<TraceContext, F>;

fn nonzero_u128() -> u128 {
    loop {
        let id = fastrand::u128(..);
        if id != 0 {
            return id;
        }
    }
}

fn nonzero_u64() -> u64 {
    loop {
        let id = fastrand::u64(..);
        if id != 0 {
            return id;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceparent_round_trips_and_a_child_keeps_the_trace() {
        let header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let context = TraceContext::parse(header).unwrap();
        assert_eq!(context.header(), header);
        assert_eq!(context.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        let child = context.child();
        assert_eq!(child.trace_id(), context.trace_id());
        assert_ne!(child.span_id(), context.span_id());
        let unsampled =
            TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").unwrap();
        assert_eq!(unsampled.header().as_bytes()[54], b'0');
    }

    #[test]
    fn what_is_not_a_traceparent_is_refused() {
        for header in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceContext::parse(header), None, "{header:?}");
        }
        // A later version is read by its first four fields.
        assert!(
            TraceContext::parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what")
                .is_some()
        );
    }

    #[tokio::test]
    async fn the_context_is_the_scopes() {
        assert_eq!(TraceContext::current(), None);
        let context = TraceContext::root();
        let seen = scope(context, async { TraceContext::current() }).await;
        assert_eq!(seen, Some(context));
    }
}
