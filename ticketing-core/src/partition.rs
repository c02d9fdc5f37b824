//! Ordering keys and partitions: what per-key ordered delivery
//! ([`Bus::subscribe_ordered`](crate::Bus::subscribe_ordered)) orders by.
//!
//! An event names the record it is about with [`Event::key`](crate::Event::key); the
//! [`Publisher`](crate::Publisher) sends it as the CloudEvents partitioning extension's
//! `ce-partitionkey` header, through the outbox too. A bus with partitions maps each key to one
//! of `n` partitions with [`partition`]: FNV-1a (32 bits) of the key's [`token`] modulo `n`, the
//! function of nats-server's subject transform `{{partition(n, …)}}`, so the in-memory bus puts
//! a key in the partition NATS puts it in. An ordered consumer delivers each key's messages in
//! publish order, one at a time, to one member at a time; keys run in parallel, within a
//! partition and across members.
//!
//! A message without a key (published before keys, or by an event without one) is ordered by
//! its message id instead: alone, with no order promised against other messages.

use std::borrow::Cow;

use crate::bus::Headers;

/// `ce-partitionkey`: the ordering key of an event (the CloudEvents partitioning extension).
pub const KEY: &str = "ce-partitionkey";

/// The longest key sent as it is in a subject token; longer keys are hashed.
const MAX_PLAIN: usize = 64;

/// The subject token a key travels as: the key itself when it is 1 to 64 characters of
/// `A–Z a–z 0–9 - _ :` (record ids are), else `h` and the 16 hex digits of its 64-bit FNV-1a
/// hash (the same key always gives the same token, so its order holds).
pub fn token(key: &str) -> Cow<'_, str> {
    let plain = !key.is_empty()
        && key.len() <= MAX_PLAIN
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b':'));
    if plain {
        Cow::Borrowed(key)
    } else {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in key.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        Cow::Owned(format!("h{hash:016x}"))
    }
}

/// The partition of `key` among `partitions` (at least 1): FNV-1a 32 of its [`token`] modulo
/// the count, as nats-server's `partition(n, …)` transform computes it.
pub fn partition(key: &str, partitions: u32) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in token(key).bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash % partitions.max(1)
}

/// The ordering key of a message: its `ce-partitionkey`, else its message id (`ce-id`, or the
/// header of messages from before the envelope).
pub fn key_of(headers: &Headers) -> Option<&str> {
    headers
        .get(KEY)
        .or_else(|| headers.get(crate::envelope::ID))
        .or_else(|| headers.get(crate::bus::header::MESSAGE_ID))
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_ids_travel_as_they_are_and_other_keys_hashed() {
        assert_eq!(
            token("6568a1b2c3d4e5f601234567"),
            "6568a1b2c3d4e5f601234567"
        );
        assert_eq!(token("order:created:7"), "order:created:7");
        for odd in ["a.b", "", "with space", "*", &"x".repeat(65)] {
            let hashed = token(odd);
            assert!(hashed.starts_with('h') && hashed.len() == 17, "{odd:?}");
            assert_eq!(hashed, token(odd), "deterministic");
        }
        assert_ne!(token("a.b"), token("a.c"));
    }

    #[test]
    fn partitions_are_fnv1a_of_the_token_as_nats_computes_them() {
        // FNV-1a 32 reference values: "" 0x811c9dc5, "a" 0xe40c292c, "foobar" 0xbf9cf968.
        assert_eq!(partition("a", u32::MAX), 0xe40c_292c);
        assert_eq!(partition("foobar", u32::MAX), 0xbf9c_f968);
        assert_eq!(partition("anything", 1), 0);
        assert_eq!(partition("anything", 0), 0);
        let spread: std::collections::BTreeSet<u32> =
            (0..200).map(|i| partition(&format!("k{i}"), 8)).collect();
        assert_eq!(spread.len(), 8, "200 keys reach every one of 8 partitions");
    }

    #[test]
    fn the_key_is_the_partition_key_else_the_message_id() {
        let mut headers = Headers::new();
        assert_eq!(key_of(&headers), None);
        headers.insert(crate::bus::header::MESSAGE_ID.into(), "old".into());
        assert_eq!(key_of(&headers), Some("old"));
        headers.insert(crate::envelope::ID.into(), "id".into());
        assert_eq!(key_of(&headers), Some("id"));
        headers.insert(KEY.into(), "record".into());
        assert_eq!(key_of(&headers), Some("record"));
    }
}
