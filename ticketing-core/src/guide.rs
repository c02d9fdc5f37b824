//! Your own service: a guide to building a service of your own domain on the SDK.
#![doc = include_str!("../docs/guide.md")]
