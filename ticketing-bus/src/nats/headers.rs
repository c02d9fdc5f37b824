//! Headers between the bus and NATS, and dead letters read back from their stream.

#[allow(clippy::wildcard_imports)]
use super::*;

use ticketing_core::envelope;

pub(super) fn to_nats_headers(headers: &Headers) -> Result<HeaderMap, BusError> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.insert(header_name(name)?, header_value(value));
    }
    Ok(map)
}

/// The names every event carries, made once rather than parsed and copied per message.
const KNOWN_NAMES: [&str; 8] = [
    envelope::SPECVERSION,
    envelope::ID,
    envelope::SOURCE,
    envelope::TYPE,
    envelope::TIME,
    envelope::DATACONTENTTYPE,
    envelope::SCHEMAVERSION,
    ticketing_core::trace::TRACEPARENT,
];

fn header_name(name: &str) -> Result<HeaderName, BusError> {
    if let Some(known) = KNOWN_NAMES.iter().find(|known| **known == name) {
        return Ok(HeaderName::from_static(known));
    }
    name.parse()
        .map_err(|_| backend(format!("invalid header name {name:?}")))
}

/// Header values cannot hold line breaks or other control characters.
pub(super) fn header_value(value: &str) -> HeaderValue {
    if !value.chars().any(char::is_control) {
        return HeaderValue::from(value);
    }
    let clean: String = value
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    HeaderValue::from(clean)
}

pub(super) fn from_nats_headers(headers: Option<&HeaderMap>) -> Headers {
    let mut out = Headers::new();
    if let Some(headers) = headers {
        for (name, values) in headers.iter() {
            let name: &str = name.as_ref();
            if name.starts_with("Nats-") || name.starts_with("Ticketing-") {
                continue;
            }
            if let Some(value) = values.last() {
                out.insert(name.to_owned(), value.as_str().to_owned());
            }
        }
    }
    out
}

pub(super) fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(HeaderValue::as_str)
}

pub(super) fn parse_dead_letter(id: u64, headers: HeaderMap, payload: Bytes) -> DeadLetter {
    let text = |name| header(&headers, name).unwrap_or_default().to_owned();
    let number = |name| {
        header(&headers, name)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    DeadLetter {
        id,
        message: Message {
            subject: text(DEAD_SUBJECT),
            payload,
            headers: from_nats_headers(Some(&headers)),
            sequence: number(DEAD_SEQUENCE),
        },
        group: text(DEAD_GROUP),
        attempts: u32::try_from(number(DEAD_ATTEMPTS)).unwrap_or(u32::MAX),
        reason: text(DEAD_REASON),
        at: UNIX_EPOCH + Duration::from_millis(number(DEAD_AT)),
    }
}
