//! The routes of `/api/payments`.

pub(crate) mod create;

pub use create::create;
