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

    /// The ordering key: the id of the record this event is about. Consumers that ask for
    /// per-key order ([`ListenerOptions::ordered`](crate::ListenerOptions::ordered)) get the
    /// events of one key in publish order, one at a time; it is published as
    /// `ce-partitionkey` (see [`partition`](crate::partition)). Default none: the event is
    /// ordered alone.
    fn key(&self) -> Option<String> {
        None
    }

    /// The version of this event's schema, published with it as `ce-schemaversion` (see
    /// [`envelope`](crate::envelope)). Raise it when the payload changes in a way older
    /// readers cannot take, and teach [`upcast`](Self::upcast) the versions before. Default 1.
    const VERSION: u32 = 1;

    /// Turns the JSON of an older schema `version` of this event into the current version's
    /// JSON. The listener runtime calls it for a message whose `ce-schemaversion` is older than
    /// [`VERSION`](Self::VERSION) (a message without one is version 1); an `Err` dead-letters
    /// the message with the reason. Default: there are no older versions.
    ///
    /// ```
    /// use serde::{Deserialize, Serialize};
    /// use serde_json::{Value, json};
    /// use ticketing_core::Event;
    ///
    /// /// Version 2 split `name` into `first` and `last`.
    /// #[derive(Debug, Serialize, Deserialize)]
    /// struct Renamed { id: u32, first: String, last: String }
    ///
    /// impl Event for Renamed {
    ///     const SUBJECT: &'static str = "person:renamed";
    ///     const VERSION: u32 = 2;
    ///     fn message_id(&self) -> String { format!("{}:{}", Self::SUBJECT, self.id) }
    ///     fn upcast(version: u32, mut old: Value) -> Result<Value, String> {
    ///         match version {
    ///             1 => {
    ///                 let name = old["name"].as_str().ok_or("no name")?.to_owned();
    ///                 let (first, last) = name.split_once(' ').unwrap_or((&name, ""));
    ///                 old["first"] = json!(first);
    ///                 old["last"] = json!(last);
    ///                 Ok(old)
    ///             }
    ///             other => Err(format!("no upcast from version {other}")),
    ///         }
    ///     }
    /// }
    ///
    /// let v1 = json!({"id": 7, "name": "Ada Lovelace"});
    /// let current: Renamed = serde_json::from_value(Renamed::upcast(1, v1).unwrap()).unwrap();
    /// assert_eq!((current.first.as_str(), current.last.as_str()), ("Ada", "Lovelace"));
    /// ```
    fn upcast(version: u32, payload: serde_json::Value) -> Result<serde_json::Value, String> {
        let _ = payload;
        Err(format!(
            "{} has no upcast from schema version {version} to {}",
            Self::SUBJECT,
            Self::VERSION
        ))
    }
}

/// What a listener consumes: one [`Event`] type (every event is one), or several events on one
/// durable consumer, an enum declared with [`events!`](crate::events) that dispatches by subject.
pub trait Events: Send + Sized + 'static {
    /// The subjects consumed, in declaration order.
    const SUBJECTS: &'static [&'static str];

    /// Decodes the message of `subject` (one of [`SUBJECTS`](Self::SUBJECTS)).
    fn decode(subject: &str, payload: &[u8], headers: &crate::Headers) -> Result<Self, String>;
}

impl<E: Event> Events for E {
    const SUBJECTS: &'static [&'static str] = &[E::SUBJECT];

    fn decode(_subject: &str, payload: &[u8], headers: &crate::Headers) -> Result<Self, String> {
        decode::<E>(payload, headers)
    }
}

/// Declares an enum of events, one variant per event type, that a listener consumes on one
/// durable consumer of all their subjects (see [`Bus::subscribe_many`](crate::Bus::subscribe_many)):
/// each message is decoded as the variant of its subject, upcast as [`decode`] does.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use ticketing_core::Event;
/// use ticketing_core::event::Events;
///
/// #[derive(Debug, Serialize, Deserialize)]
/// struct Opened { id: u32 }
/// impl Event for Opened {
///     const SUBJECT: &'static str = "account:opened";
///     fn message_id(&self) -> String { format!("{}:{}", Self::SUBJECT, self.id) }
/// }
/// #[derive(Debug, Serialize, Deserialize)]
/// struct Closed { id: u32 }
/// impl Event for Closed {
///     const SUBJECT: &'static str = "account:closed";
///     fn message_id(&self) -> String { format!("{}:{}", Self::SUBJECT, self.id) }
/// }
///
/// ticketing_core::events! {
///     /// What happens to an account.
///     #[derive(Debug)]
///     pub enum AccountEvent {
///         Opened(Opened),
///         Closed(Closed),
///     }
/// }
///
/// assert_eq!(AccountEvent::SUBJECTS, ["account:opened", "account:closed"]);
/// let closed = AccountEvent::decode("account:closed", br#"{"id":7}"#, &Default::default());
/// assert!(matches!(closed, Ok(AccountEvent::Closed(Closed { id: 7 }))));
/// ```
#[macro_export]
macro_rules! events {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $($(#[$variant_meta:meta])* $variant:ident($event:ty)),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis enum $name {
            $($(#[$variant_meta])* $variant($event)),+
        }

        impl $crate::event::Events for $name {
            const SUBJECTS: &'static [&'static str] =
                &[$(<$event as $crate::Event>::SUBJECT),+];

            fn decode(
                subject: &str,
                payload: &[u8],
                headers: &$crate::Headers,
            ) -> ::std::result::Result<Self, ::std::string::String> {
                $(
                    if subject == <$event as $crate::Event>::SUBJECT {
                        return $crate::event::decode::<$event>(payload, headers).map($name::$variant);
                    }
                )+
                ::std::result::Result::Err(::std::format!(
                    "{} has no event of subject {subject}",
                    ::std::stringify!($name)
                ))
            }
        }
    };
}

/// Decodes an event from a message's payload, upcasting a payload of an older schema version
/// (its `ce-schemaversion`; none is version 1) with [`Event::upcast`]. A payload of a newer
/// version is read as the current one (unknown fields are ignored).
pub fn decode<E: Event>(payload: &[u8], headers: &crate::Headers) -> Result<E, String> {
    let version = crate::envelope::schema_version(headers).unwrap_or(1);
    if version >= E::VERSION {
        return serde_json::from_slice(payload).map_err(|e| e.to_string());
    }
    let old = serde_json::from_slice(payload).map_err(|e| e.to_string())?;
    let current = E::upcast(version, old)?;
    serde_json::from_value(current)
        .map_err(|e| format!("the upcast from schema version {version} does not decode: {e}"))
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
