//! The auth service: sign-up, sign-in, sign-out and the current user, on `/api/users`.
//!
//! Passwords are hashed with argon2id (never stored or logged in clear); emails are trimmed
//! and unique ignoring case; sessions are JWTs with an expiry, in the `session` cookie or a
//! bearer token.

pub mod configuration;
pub mod password;
pub mod routes;
pub mod startup;
