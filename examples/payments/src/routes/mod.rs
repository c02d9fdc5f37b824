//! The routes of `/api/payments`.

pub(crate) mod create;
pub(crate) mod provider;

pub use create::create;
pub use provider::provider;
