//! The envelope of every event: [CloudEvents](https://github.com/cloudevents/spec) 1.0
//! attributes in binary content mode, as message headers (the CloudEvents NATS binding: the
//! payload is the event's JSON unchanged, each attribute a `ce-` header).
//!
//! | header | value |
//! |---|---|
//! | `ce-specversion` | `1.0` |
//! | `ce-id` | the event's message id (also the broker's de-duplication id, `Nats-Msg-Id`) |
//! | `ce-source` | the publishing service ([`source`]) |
//! | `ce-type` | the subject (`ticket:created`) |
//! | `ce-time` | when the event was made: inside the store operation for an event committed with a change (the outbox keeps the headers, so the relay's later publish does not change it), at publish for a direct publish |
//! | `ce-datacontenttype` | `application/json` |
//! | `ce-schemaversion` | the event's schema version ([`Event::VERSION`]), an extension attribute |
//!
//! The schema version is an extension attribute rather than `ce-dataschema`: `dataschema` is a
//! URI naming a schema document, which the system does not publish; a number is what a reader
//! needs to pick an upcaster. A message without it (published before the envelope, or by the
//! original Node.js services) is read as version 1. Since the payload is unchanged, a service
//! of the original system still reads ours, and ours read theirs.
//!
//! [`Event::VERSION`]: crate::Event::VERSION

use std::future::Future;
use std::sync::{Arc, PoisonError, RwLock};

use chrono::{SecondsFormat, Utc};

use crate::bus::{Headers, OutgoingMessage};

/// `ce-specversion`.
pub const SPECVERSION: &str = "ce-specversion";
/// `ce-id`.
pub const ID: &str = "ce-id";
/// `ce-source`.
pub const SOURCE: &str = "ce-source";
/// `ce-type`.
pub const TYPE: &str = "ce-type";
/// `ce-time`.
pub const TIME: &str = "ce-time";
/// `ce-datacontenttype`.
pub const DATACONTENTTYPE: &str = "ce-datacontenttype";
/// `ce-schemaversion`, the extension attribute carrying [`Event::VERSION`](crate::Event::VERSION).
pub const SCHEMAVERSION: &str = "ce-schemaversion";

tokio::task_local! {
    static SOURCE_OF_TASK: &'static str;
}

static DEFAULT_SOURCE: RwLock<Option<Arc<str>>> = RwLock::new(None);

/// Names the process's publisher: the `ce-source` of events made outside any
/// [`with_source`] scope (a service alone sets its name at start).
pub fn set_default_source(source: &str) {
    *DEFAULT_SOURCE
        .write()
        .unwrap_or_else(PoisonError::into_inner) = Some(Arc::from(source));
}

/// `future` run with a `ce-source` ([`with_source`]), as a nameable type (for a tower
/// service's future).
pub type WithSource<F> = tokio::task::futures::TaskLocalFuture<&'static str, F>;

/// Runs `future` with `source` as the `ce-source` of the events it makes (a service's routes
/// and listeners inside a process that runs several).
pub fn with_source<F: Future>(source: &'static str, future: F) -> WithSource<F> {
    SOURCE_OF_TASK.scope(source, future)
}

/// The `ce-source` of an event made now: the task's [`with_source`], else the process's
/// [`set_default_source`], else `ticketing`.
pub fn source() -> String {
    if let Ok(source) = SOURCE_OF_TASK.try_with(|s| *s) {
        return source.to_owned();
    }
    DEFAULT_SOURCE
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .as_deref()
        .unwrap_or("ticketing")
        .to_owned()
}

/// The schema version a message says it carries; `None` for a message without the envelope.
pub fn schema_version(headers: &Headers) -> Option<u32> {
    headers.get(SCHEMAVERSION).and_then(|v| v.parse().ok())
}

/// Adds the envelope of an event of `subject`, message id `id` and schema `version`.
pub(crate) fn stamp(message: OutgoingMessage, id: &str, version: u32) -> OutgoingMessage {
    let subject = message.subject.clone();
    message
        .with_header(SPECVERSION, "1.0")
        .with_header(ID, id)
        .with_header(SOURCE, source())
        .with_header(TYPE, subject)
        .with_header(
            TIME,
            Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        )
        .with_header(DATACONTENTTYPE, "application/json")
        .with_header(SCHEMAVERSION, version.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_source_is_the_task_s_then_the_process_s() {
        assert_eq!(&*with_source("orders", async { source() }).await, "orders");
        set_default_source("tickets");
        assert_eq!(&*source(), "tickets");
        assert_eq!(&*with_source("orders", async { source() }).await, "orders");
    }

    #[test]
    fn a_message_without_the_envelope_has_no_schema_version() {
        assert_eq!(schema_version(&Headers::new()), None);
        let stamped = stamp(OutgoingMessage::new("a:b", "{}"), "a:b:1", 3);
        assert_eq!(schema_version(&stamped.headers), Some(3));
        assert_eq!(stamped.headers[TYPE], "a:b");
        assert_eq!(stamped.headers[ID], "a:b:1");
    }
}
