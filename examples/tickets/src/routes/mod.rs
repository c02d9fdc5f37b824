//! The routes of `/api/tickets`, one module per action.

pub(crate) mod create;
pub(crate) mod index;
pub(crate) mod show;
pub(crate) mod update;

pub use create::create;
pub use index::{DEFAULT_PAGE, MAX_PAGE, index};
pub use show::show;
pub use update::update;
