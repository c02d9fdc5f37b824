//! Deliveries and the members that take them: what a backend hands out, and what settles it.

#[allow(clippy::wildcard_imports)]
use super::*;

/// Settles one delivery; implemented by each backend. [`Delivery`] wraps it.
#[async_trait]
pub trait Acknowledger: Send + Sync {
    /// Done: never redeliver.
    async fn ack(&self) -> Result<(), BusError>;
    /// Redeliver, no sooner than `delay` (at once for `None`).
    async fn nak(&self, delay: Option<Duration>) -> Result<(), BusError>;
    /// Never redeliver; dead-letter with `reason`.
    async fn term(&self, reason: &str) -> Result<(), BusError>;
    /// Still working: restart the ack-wait clock.
    async fn progress(&self) -> Result<(), BusError>;
    /// Acks at once, if the backend can without waiting (the in-memory bus can); `None` when
    /// the ack must be awaited with [`ack`](Self::ack), which the default says. The listener
    /// runtime tries this first: it spares each delivery the boxed future of `ack`.
    fn try_ack(&self) -> Option<Result<(), BusError>> {
        None
    }
}

/// One delivery of a message to one member of a queue group. It must be settled once with
/// [`ack`](Self::ack), [`nak`](Self::nak) or [`term`](Self::term); a delivery dropped unsettled
/// is redelivered after the ack wait.
pub struct Delivery {
    message: Arc<Message>,
    group: Arc<str>,
    attempt: u32,
    published: Option<tokio::time::Instant>,
    taken: Option<tokio::time::Instant>,
    acker: Arc<dyn Acknowledger>,
}

/// A delivery taken apart: the message, its group, attempt and publish time, and what settles
/// it (for the listener pipeline).
pub(crate) struct DeliveryParts {
    pub(crate) message: Arc<Message>,
    pub(crate) group: Arc<str>,
    pub(crate) attempt: u32,
    pub(crate) published: Option<tokio::time::Instant>,
    pub(crate) taken: Option<tokio::time::Instant>,
    pub(crate) acker: Arc<dyn Acknowledger>,
}

impl Delivery {
    /// Builds a delivery; for backend implementations.
    pub fn new(
        message: Arc<Message>,
        group: Arc<str>,
        attempt: u32,
        acker: Box<dyn Acknowledger>,
    ) -> Self {
        Self::of(message, group, attempt, Arc::from(acker))
    }

    /// As [`new`](Self::new), with the acknowledger by value: one allocation fewer per
    /// delivery than boxing it.
    pub fn with_acker(
        message: Arc<Message>,
        group: Arc<str>,
        attempt: u32,
        acker: impl Acknowledger + 'static,
    ) -> Self {
        Self::of(message, group, attempt, Arc::new(acker))
    }

    /// As [`new`](Self::new), with a shared acknowledger: a backend that keeps its
    /// acknowledger after the delivery is done with it can fill it in again for the next
    /// delivery (`Arc::get_mut` succeeds once the delivery is dropped), with no allocation.
    pub fn with_shared_acker(
        message: Arc<Message>,
        group: Arc<str>,
        attempt: u32,
        acker: Arc<dyn Acknowledger>,
    ) -> Self {
        Self::of(message, group, attempt, acker)
    }

    fn of(
        message: Arc<Message>,
        group: Arc<str>,
        attempt: u32,
        acker: Arc<dyn Acknowledger>,
    ) -> Self {
        Delivery {
            message,
            group,
            attempt,
            published: None,
            taken: None,
            acker,
        }
    }

    pub(crate) fn into_parts(self) -> DeliveryParts {
        DeliveryParts {
            message: self.message,
            group: self.group,
            attempt: self.attempt,
            published: self.published,
            taken: self.taken,
            acker: self.acker,
        }
    }

    /// The same delivery, stamped with when the broker stored the message, on tokio's clock
    /// (a backend with wall-clock publish times converts: now minus the message's age). Every
    /// backend of this workspace sets it; the listener runtime measures how long a waiting
    /// event has waited from it.
    pub fn with_published(mut self, at: tokio::time::Instant) -> Self {
        self.published = Some(at);
        self
    }

    /// The same delivery, stamped with when the backend took it for this member, on tokio's
    /// clock: a backend that read the clock to take it (the in-memory bus does, for the ack
    /// deadline) spares the listener a reading of its own, since the handling time is counted
    /// from here. Without it the handling time starts when the pipeline's metrics step sees the
    /// delivery.
    pub fn with_taken(mut self, at: tokio::time::Instant) -> Self {
        self.taken = Some(at);
        self
    }

    /// When the broker stored the message, on tokio's clock, if the backend says.
    pub fn published(&self) -> Option<tokio::time::Instant> {
        self.published
    }

    /// How long ago the broker stored the message, if the backend says.
    pub fn age(&self) -> Option<Duration> {
        self.published
            .map(|at| tokio::time::Instant::now().saturating_duration_since(at))
    }

    /// The message.
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// The subject.
    pub fn subject(&self) -> &str {
        &self.message.subject
    }

    /// The payload.
    pub fn payload(&self) -> &Bytes {
        &self.message.payload
    }

    /// The headers.
    pub fn headers(&self) -> &Headers {
        &self.message.headers
    }

    /// The sequence of the message in its subject's log.
    pub fn sequence(&self) -> u64 {
        self.message.sequence
    }

    /// The queue group this delivery belongs to.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// 1 for the first delivery, 2 for the first redelivery, and so on.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Done: never redeliver.
    pub async fn ack(self) -> Result<(), BusError> {
        self.acker.ack().await
    }

    /// Redeliver, no sooner than `delay` (at once for `None`).
    pub async fn nak(self, delay: Option<Duration>) -> Result<(), BusError> {
        self.acker.nak(delay).await
    }

    /// Never redeliver; dead-letter with `reason`.
    pub async fn term(self, reason: &str) -> Result<(), BusError> {
        self.acker.term(reason).await
    }

    /// Still working: restart the ack-wait clock.
    pub async fn progress(&self) -> Result<(), BusError> {
        self.acker.progress().await
    }
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("subject", &self.message.subject)
            .field("sequence", &self.message.sequence)
            .field("group", &self.group)
            .field("attempt", &self.attempt)
            .field("payload_len", &self.message.payload.len())
            .finish()
    }
}

/// One member of a queue group.
#[async_trait]
pub trait Subscription: Send {
    /// The next delivery for this member; waits until one is due. `None` once the bus is
    /// closed. Cancel-safe: dropping the future loses nothing.
    async fn next(&mut self) -> Option<Result<Delivery, BusError>>;

    /// A delivery that is ready now, without waiting (`None` when none is, or the backend
    /// cannot tell without waiting). The listener runtime asks this first and awaits
    /// [`next`](Self::next) only when it returns `None`; a backend that holds deliveries in
    /// memory (the in-memory bus, a prefetched batch) answers it without the cost of a future.
    fn try_next(&mut self) -> Option<Result<Delivery, BusError>> {
        None
    }

    /// Leaves the group. Deliveries already handed out stay valid and must still be settled;
    /// messages a pulling backend fetched ahead but never handed out go back to the group
    /// after their ack wait.
    async fn close(self: Box<Self>) -> Result<(), BusError>;
}
