//! A member of a queue group: pulls from the group's durable consumer, settles with JetStream's acks.

#[allow(clippy::wildcard_imports)]
use super::*;

pub(super) struct NatsSubscription {
    pub(super) inner: Arc<Inner>,
    pub(super) consumer: PullConsumer,
    pub(super) group: Arc<str>,
    pub(super) options: SubscribeOptions,
    pub(super) messages: Option<pull::Stream>,
    /// A consumer of several subjects that took over from the group's per-subject durables:
    /// each subject with the stream sequence through which its old durable
    /// had acknowledged everything. Those messages are acked unseen.
    pub(super) acked_before: Vec<(String, u64)>,
}

impl NatsSubscription {
    pub(super) fn new(
        inner: Arc<Inner>,
        consumer: PullConsumer,
        group: &str,
        options: SubscribeOptions,
        acked_before: Vec<(String, u64)>,
    ) -> Self {
        NatsSubscription {
            inner,
            consumer,
            group: Arc::from(group),
            options,
            messages: None,
            acked_before,
        }
    }

    /// Turns a pulled message into a delivery, or handles it here: a redrive meant for another
    /// group is acked unseen; a delivery past `max_deliver` is dead-lettered.
    pub(super) async fn accept(
        &self,
        message: async_nats::jetstream::Message,
    ) -> Result<Option<Delivery>, BusError> {
        Ok(self.accept_parts(message).await?.map(|accepted| {
            Delivery::with_acker(
                accepted.message,
                self.group.clone(),
                accepted.attempt,
                accepted.acker,
            )
            .with_published(accepted.published)
            // Handed out as it is accepted: the handling time counts from this reading.
            .with_taken(accepted.taken)
        }))
    }

    /// [`accept`](Self::accept), the delivery in parts.
    pub(super) async fn accept_parts(
        &self,
        message: async_nats::jetstream::Message,
    ) -> Result<Option<Accepted>, BusError> {
        let (attempt, sequence, published, taken) = {
            let info = message.info().map_err(backend)?;
            // The server's wall-clock publish time, as an instant on our clock.
            let age = SystemTime::now()
                .duration_since(SystemTime::from(info.published))
                .unwrap_or_default();
            let now = tokio::time::Instant::now();
            (
                u32::try_from(info.delivered.max(1)).unwrap_or(u32::MAX),
                info.stream_sequence,
                now.checked_sub(age).unwrap_or(now),
                now,
            )
        };
        if let Some(target) = message
            .headers
            .as_ref()
            .and_then(|h| header(h, REDRIVE_GROUP))
        {
            if target != &*self.group {
                message.ack().await.map_err(backend)?;
                return Ok(None);
            }
        }
        if self.acked_before.iter().any(|(subject, floor)| {
            sequence <= *floor && self.inner.user_subject(message.subject.as_str()) == subject
        }) {
            // Handled on the group's per-subject durable before the move.
            message.ack().await.map_err(backend)?;
            return Ok(None);
        }
        let (message, acker) = message.split();
        let ours = Arc::new(Message {
            subject: self.inner.user_subject(message.subject.as_str()).to_owned(),
            payload: message.payload,
            headers: from_nats_headers(message.headers.as_ref()),
            sequence,
        });
        let acker = NatsAcker {
            inner: self.inner.clone(),
            acker,
            message: ours.clone(),
            group: self.group.clone(),
            attempt,
            max_deliver: self.options.max_deliver.max(1),
        };
        if attempt > acker.max_deliver {
            let reason = format!(
                "delivered {} times without an ack (max_deliver {})",
                attempt - 1,
                acker.max_deliver
            );
            acker.dead_letter_and_term(attempt - 1, &reason).await?;
            return Ok(None);
        }
        Ok(Some(Accepted {
            message: ours,
            acker,
            attempt,
            published,
            taken,
        }))
    }

    /// The next message pulled from the consumer, the pull stream (re)opened as needed.
    pub(super) async fn pull(
        &mut self,
    ) -> Option<Result<async_nats::jetstream::Message, BusError>> {
        if self.messages.is_none() {
            let stream = self
                .consumer
                .stream()
                .max_messages_per_batch(self.options.prefetch.max(1))
                // Short-lived pull requests: one left behind by a closed member expires soon.
                .expires(Duration::from_secs(2))
                .heartbeat(Duration::from_millis(500))
                .messages()
                .await;
            match stream {
                Ok(stream) => self.messages = Some(stream),
                Err(e) => return Some(Err(backend(e))),
            }
        }
        match self.messages.as_mut()?.next().await {
            Some(Ok(message)) => Some(Ok(message)),
            Some(Err(e)) => Some(Err(backend(e))),
            None => {
                self.messages = None;
                Some(Err(backend("the pull stream ended; reopening")))
            }
        }
    }
}

/// A pulled message accepted for handing out.
pub(super) struct Accepted {
    pub(super) message: Arc<Message>,
    pub(super) acker: NatsAcker,
    pub(super) attempt: u32,
    pub(super) published: tokio::time::Instant,
    /// When it was accepted, on the clock reading that dated its publishing.
    pub(super) taken: tokio::time::Instant,
}

#[async_trait]
impl Subscription for NatsSubscription {
    async fn next(&mut self) -> Option<Result<Delivery, BusError>> {
        loop {
            match self.pull().await? {
                Ok(message) => match self.accept(message).await {
                    Ok(Some(delivery)) => return Some(Ok(delivery)),
                    Ok(None) => continue,
                    Err(e) => return Some(Err(e)),
                },
                Err(e) => return Some(Err(e)),
            }
        }
    }

    async fn close(self: Box<Self>) -> Result<(), BusError> {
        // Messages fetched but never handed out are redelivered after their ack wait. Naking
        // them here would race the server redelivering them into this member's last pull
        // request, which can deliver one twice.
        drop(self);
        Ok(())
    }
}

pub(super) struct NatsAcker {
    pub(super) inner: Arc<Inner>,
    pub(super) acker: async_nats::jetstream::message::Acker,
    pub(super) message: Arc<Message>,
    pub(super) group: Arc<str>,
    pub(super) attempt: u32,
    pub(super) max_deliver: u32,
}

impl NatsAcker {
    pub(super) async fn dead_letter_and_term(
        &self,
        attempts: u32,
        reason: &str,
    ) -> Result<(), BusError> {
        self.inner
            .dead_letter(&self.message, &self.group, attempts, reason)
            .await?;
        self.acker.ack_with(AckKind::Term).await.map_err(backend)
    }
}

#[async_trait]
impl Acknowledger for NatsAcker {
    async fn ack(&self) -> Result<(), BusError> {
        if self.inner.config.confirm_acks {
            self.acker.double_ack().await.map_err(backend)
        } else {
            self.acker.ack().await.map_err(backend)
        }
    }

    async fn nak(&self, delay: Option<Duration>) -> Result<(), BusError> {
        if self.attempt >= self.max_deliver {
            let reason = format!(
                "nacked on delivery {} of max_deliver {}",
                self.attempt, self.max_deliver
            );
            return self.dead_letter_and_term(self.attempt, &reason).await;
        }
        self.acker
            .ack_with(AckKind::Nak(delay))
            .await
            .map_err(backend)
    }

    async fn term(&self, reason: &str) -> Result<(), BusError> {
        self.dead_letter_and_term(self.attempt, reason).await
    }

    async fn progress(&self) -> Result<(), BusError> {
        self.acker
            .ack_with(AckKind::Progress)
            .await
            .map_err(backend)
    }
}
