//! The routes of `/api/tickets`, one module per action.

mod create;
mod index;
mod show;
mod update;

pub use create::create;
pub use index::{DEFAULT_PAGE, MAX_PAGE, index};
pub use show::show;
pub use update::update;
