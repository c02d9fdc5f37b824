//! API and listener tests of the payments service, on a random port with in-memory backends
//! and the fake provider.
#![allow(unreachable_pub)]

mod pay;
mod provider;
mod repair;
mod stripe;
