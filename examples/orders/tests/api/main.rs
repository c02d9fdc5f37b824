//! API and listener tests of the orders service, on a random port with in-memory backends.
#![allow(unreachable_pub)]

mod cancel;
mod create;
mod helpers;
mod index;
mod listeners;
mod live;
mod show;
