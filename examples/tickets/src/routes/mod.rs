//! The routes of `/api/tickets`, one module per action.

mod create;
mod index;
mod show;
mod update;

pub use create::create;
pub use index::index;
pub use show::show;
pub use update::update;
