//! OpenTelemetry export (feature `otel`): when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (the
//! standard variable; `OTEL_SERVICE_NAME` names the service), the spans of requests and
//! handled messages are exported over OTLP/HTTP, parented on the W3C trace context the services
//! propagate — a request's trace continues in the listeners of the other services, and the
//! `traceparent` an event carries names the exported span that published it.

use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider,
};
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::sync::OnceLock;
use ticketing_core::trace::{Exporter, TraceContext};
use tracing_opentelemetry::OpenTelemetrySpanExt;

static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// The context of `span`, if it is exported.
fn context_of(span: &tracing::Span) -> Option<TraceContext> {
    let context = span.context();
    let span = context.span();
    let span = span.span_context();
    if !span.is_valid() {
        return None;
    }
    TraceContext::from_parts(
        u128::from_be_bytes(span.trace_id().to_bytes()),
        u64::from_be_bytes(span.span_id().to_bytes()),
        span.is_sampled(),
    )
}

/// Makes `parent` (a remote span) the parent of `span`.
pub fn adopt(span: &tracing::Span, parent: &TraceContext) {
    let remote = SpanContext::new(
        TraceId::from_bytes(parent.trace_id_value().to_be_bytes()),
        SpanId::from_bytes(parent.span_id_value().to_be_bytes()),
        if parent.sampled() {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        },
        true,
        TraceState::default(),
    );
    let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote));
}

/// The SDK's side of the bridge: events name the exported span, handlers' spans adopt the
/// context their delivery carried.
pub fn install_bridge() {
    ticketing_core::trace::install_exporter(Exporter { context_of, adopt });
}

/// The tracing layer exporting to `provider`, with the bridge installed.
pub fn layer<S>(
    provider: &SdkTracerProvider,
) -> tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::Tracer>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    install_bridge();
    tracing_opentelemetry::layer().with_tracer(provider.tracer("ticketing"))
}

/// The exporting provider, when `OTEL_EXPORTER_OTLP_ENDPOINT` is set; kept until
/// [`shutdown`]. (Called while the log subscriber is being built: a failure goes to stderr.)
#[allow(clippy::print_stderr)]
pub fn provider_from_environment() -> Option<SdkTracerProvider> {
    std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT")?;
    let exporter = match opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
    {
        Ok(exporter) => exporter,
        Err(error) => {
            eprintln!("warning: OpenTelemetry export is off: {error}");
            return None;
        }
    };
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .build();
    let _ = PROVIDER.set(provider.clone());
    Some(provider)
}

/// Sends the spans still buffered (at the end of `main`).
pub fn shutdown() {
    if let Some(provider) = PROVIDER.get() {
        let _ = provider.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_sdk::trace::InMemorySpanExporter;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn a_handler_span_continues_the_delivered_trace_and_names_itself_in_what_it_publishes() {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let subscriber = tracing_subscriber::registry().with(layer(&provider));
        let delivered =
            TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        let published = tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("message");
            ticketing_core::trace::adopt(&span, &delivered);
            let _entered = span.enter();
            TraceContext::for_outgoing().expect("inside a span")
        });
        provider.force_flush().unwrap();
        let spans = exporter.get_finished_spans().unwrap();
        let message = spans
            .iter()
            .find(|s| s.name == "message")
            .expect("exported");
        let trace = message.span_context.trace_id().to_string();
        assert_eq!(
            trace, "4bf92f3577b34da6a3ce929d0e0e4736",
            "the delivered trace"
        );
        assert_eq!(message.parent_span_id.to_string(), "00f067aa0ba902b7");
        // What the handler publishes names the exported span as its parent.
        assert_eq!(published.trace_id(), trace);
        assert_eq!(
            published.span_id(),
            message.span_context.span_id().to_string()
        );
    }
}
