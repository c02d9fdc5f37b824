//! Settings of the tickets service: the common options (`PORT`, `JWT_KEY`, `NATS_URL`,
//! `DATABASE_URL` or `MONGO_URI`, ...).

ticketing_common::service_settings! {
    /// The tickets service's settings, from the environment and flags.
    pub struct Settings("tickets", "The tickets service of the ticketing system") {}
}
