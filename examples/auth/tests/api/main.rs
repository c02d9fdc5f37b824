//! API tests of the auth service: one module per route, on a random port with in-memory users.
#![allow(unreachable_pub)]

mod current_user;
mod helpers;
mod logging;
mod routing;
mod signin;
mod signout;
mod signup;
