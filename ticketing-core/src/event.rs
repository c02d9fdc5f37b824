//! Events: serde structs bound at compile time to one subject.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// An event: a JSON payload bound to one subject.
///
/// The message id is deterministic (subject, record id and version for versioned records) so
/// that the broker can drop a re-published copy inside its de-duplication window.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use ticketing_core::Event;
///
/// #[derive(Debug, Serialize, Deserialize)]
/// struct InvoiceSent { invoice: String }
///
/// impl Event for InvoiceSent {
///     const SUBJECT: &'static str = "invoice:sent";
///     fn message_id(&self) -> String {
///         format!("{}:{}", Self::SUBJECT, self.invoice)
///     }
/// }
/// ```
pub trait Event: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The subject this event is published on.
    const SUBJECT: &'static str;

    /// The de-duplication id of this event.
    fn message_id(&self) -> String;
}

/// Serde for timestamps as ISO-8601 UTC with milliseconds (`2026-01-01T00:15:00.123Z`), the
/// format of JavaScript's `Date.prototype.toISOString`.
pub mod iso_millis {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes `2026-01-01T00:15:00.123Z`.
    pub fn serialize<S: Serializer>(value: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&value.to_rfc3339_opts(SecondsFormat::Millis, true))
    }

    /// Reads any RFC 3339 timestamp.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}
