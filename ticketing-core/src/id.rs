//! Record identifiers: 12 bytes shown as 24 lowercase hex characters, the format of the
//! original system's ids.

use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::str::FromStr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A record id: 12 bytes, written as 24 hex characters (`"5f1a2b3c4d5e6f7a8b9c0d1e"`).
///
/// New ids are laid out like MongoDB object ids — 4 bytes of seconds since the epoch, 5 bytes
/// random per process, 3 bytes of a counter — so they are unique across processes and roughly
/// ordered by creation time.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id([u8; 12]);

/// The text was not 24 hex characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid id {0:?}: expected 24 hexadecimal characters")]
pub struct InvalidId(pub String);

struct ProcessUnique {
    random: [u8; 5],
    counter: AtomicU32,
}

fn process_unique() -> &'static ProcessUnique {
    static UNIQUE: OnceLock<ProcessUnique> = OnceLock::new();
    UNIQUE.get_or_init(|| {
        // RandomState is seeded from the operating system's randomness once per process.
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u128(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos(),
        );
        hasher.write_u32(std::process::id());
        let bits = hasher.finish().to_be_bytes();
        let mut random = [0u8; 5];
        random.copy_from_slice(&bits[..5]);
        ProcessUnique {
            random,
            counter: AtomicU32::new(u32::from_be_bytes([0, bits[5], bits[6], bits[7]])),
        }
    })
}

impl Id {
    /// A new, unique id.
    pub fn new() -> Self {
        let unique = process_unique();
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs() as u32;
        let count = unique.counter.fetch_add(1, Ordering::Relaxed) & 0x00ff_ffff;
        let mut bytes = [0u8; 12];
        bytes[..4].copy_from_slice(&secs.to_be_bytes());
        bytes[4..9].copy_from_slice(&unique.random);
        bytes[9..].copy_from_slice(&count.to_be_bytes()[1..]);
        Id(bytes)
    }

    /// The id made of these bytes.
    pub const fn from_bytes(bytes: [u8; 12]) -> Self {
        Id(bytes)
    }

    /// The 12 bytes of the id.
    pub const fn bytes(&self) -> [u8; 12] {
        self.0
    }

    /// Parses 24 hex characters (either case).
    pub fn parse(text: &str) -> Result<Self, InvalidId> {
        let raw = text.as_bytes();
        if raw.len() != 24 {
            return Err(InvalidId(text.to_owned()));
        }
        let mut bytes = [0u8; 12];
        for (i, pair) in raw.chunks_exact(2).enumerate() {
            let hi = hex_value(pair[0]).ok_or_else(|| InvalidId(text.to_owned()))?;
            let lo = hex_value(pair[1]).ok_or_else(|| InvalidId(text.to_owned()))?;
            bytes[i] = hi << 4 | lo;
        }
        Ok(Id(bytes))
    }
}

impl Default for Id {
    fn default() -> Self {
        Id::new()
    }
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl Id {
    /// The 24 lowercase hex characters, on the stack: ids are written in every response and
    /// event, and one `write!` per byte showed in profiles of the read path.
    fn hex(&self) -> [u8; 24] {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut text = [0u8; 24];
        for (pair, byte) in text.chunks_exact_mut(2).zip(self.0) {
            pair[0] = DIGITS[usize::from(byte >> 4)];
            pair[1] = DIGITS[usize::from(byte & 0x0f)];
        }
        text
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.hex();
        // Hex digits are ASCII: always valid UTF-8.
        f.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({self})")
    }
}

impl FromStr for Id {
    type Err = InvalidId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Id::parse(s)
    }
}

impl Serialize for Id {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let text = self.hex();
        serializer.serialize_str(std::str::from_utf8(&text).map_err(serde::ser::Error::custom)?)
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Id::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn parsing_any_text_never_panics_and_accepts_only_24_hex(text in ".{0,40}") {
            let parsed = Id::parse(&text);
            let is_id = text.len() == 24 && text.bytes().all(|b| b.is_ascii_hexdigit());
            prop_assert_eq!(parsed.is_ok(), is_id, "{:?}", text);
        }

        #[test]
        fn display_then_parse_is_the_identity(bytes in any::<[u8; 12]>()) {
            let id = Id::from_bytes(bytes);
            prop_assert_eq!(Id::parse(&id.to_string()).unwrap(), id);
        }
    }

    #[test]
    fn new_ids_are_unique_and_24_hex_characters() {
        let ids: std::collections::HashSet<String> =
            (0..10_000).map(|_| Id::new().to_string()).collect();
        assert_eq!(ids.len(), 10_000);
        for id in ids.iter().take(10) {
            assert_eq!(id.len(), 24);
            assert!(
                id.bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            );
        }
    }

    #[test]
    fn parse_accepts_either_case_and_prints_lowercase() {
        let id = Id::parse("5F1A2B3C4D5E6F7A8B9C0D1E").unwrap();
        assert_eq!(id.to_string(), "5f1a2b3c4d5e6f7a8b9c0d1e");
        assert_eq!(Id::parse(&id.to_string()).unwrap(), id);
    }

    #[test]
    fn parse_rejects_wrong_length_and_non_hex() {
        assert!(Id::parse("abc").is_err());
        assert!(Id::parse("5f1a2b3c4d5e6f7a8b9c0d1g").is_err());
        assert!(Id::parse("5f1a2b3c4d5e6f7a8b9c0d1e0").is_err());
        assert!(Id::parse("").is_err());
    }

    #[test]
    fn serde_is_a_json_string() {
        let id = Id::parse("5f1a2b3c4d5e6f7a8b9c0d1e").unwrap();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"5f1a2b3c4d5e6f7a8b9c0d1e\"");
        assert_eq!(serde_json::from_str::<Id>(&json).unwrap(), id);
        assert!(serde_json::from_str::<Id>("\"nope\"").is_err());
        assert!(serde_json::from_str::<Id>("12").is_err());
    }
}
