//! API and listener tests of the payments service, on a random port with in-memory backends.
#![allow(unreachable_pub)]
