//! The ticketing domain: the reference system's events, reservation rules, prices, payment
//! states, store roles and their errors (feature `ticketing`, on by default).
//!
//! Everything here is built from the generic parts of the crate — [`Event`](crate::Event),
//! [`Replica`](crate::store::Replica) and [`ReplicaStore`](crate::store::ReplicaStore),
//! [`Announce`](crate::store::Announce), [`StoreError`](crate::StoreError) — as a user's own
//! domain would be. A service of another domain turns the feature off:
//!
//! ```toml
//! ticketing-core = { version = "0.1", default-features = false }
//! ```
//!
//! | module | what |
//! |---|---|
//! | [`events`] | the seven events, with the original system's subjects and JSON payloads |
//! | [`reservation`] | order statuses, transitions, which order holds a ticket, expiry |
//! | [`payment`] | payments, one charge per order, the payments service's replica of orders |
//! | [`store`] | the store roles (users, tickets, orders, replicas) and [`ReservationError`](store::ReservationError) |
//! | [`Price`] | exact prices in integer cents |

pub mod events;
pub mod payment;
mod price;
pub mod reservation;
pub mod store;

pub use price::{Price, PriceError};
pub use reservation::OrderStatus;
