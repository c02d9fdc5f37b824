//! API and listener tests of the tickets service, on a random port with in-memory backends.
#![allow(unreachable_pub)]

mod create;
mod edge;
mod helpers;
mod index;
mod listeners;
mod ops;
mod show;
mod unavailable;
mod update;
