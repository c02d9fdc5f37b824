//! The routes of `/api/orders`, one module per action.

pub(crate) mod cancel;
pub(crate) mod create;
pub(crate) mod index;
pub(crate) mod show;

pub use cancel::cancel;
pub use create::create;
pub use index::index;
pub use show::show;

use ticketing_common::{ApiError, Claims, PathId};
use ticketing_core::ticketing::store::Order;

use crate::startup::OrdersState;

/// The order at `id` if the user owns it: 404 for an unknown or malformed id, 401 for
/// someone else's order.
async fn owned_order(state: &OrdersState, user: &Claims, id: PathId) -> Result<Order, ApiError> {
    let order = state.orders.get(id.get()?).await?;
    if order.user_id != user.id {
        return Err(ApiError::NotAuthorized);
    }
    Ok(order)
}
