//! The auth service: sign-up, sign-in, sign-out and the current user, on `/api/users`.
//!
//! Passwords are hashed with argon2id (never stored or logged in clear); emails are trimmed
//! and unique ignoring case; sessions are JWTs with an expiry, in the `session` cookie or a
//! bearer token. Hashing is bounded by the cores (503 with `Retry-After` past a queue), and
//! failed sign-ins are limited per account and per client address (429 with `Retry-After`).

pub mod configuration;
pub mod guard;
pub mod password;
pub mod routes;
pub mod startup;
