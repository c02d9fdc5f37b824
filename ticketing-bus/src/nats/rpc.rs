//! Request/reply on core NATS: requests go to `<prefix>-rpc.<subject>`, outside both streams,
//! so nothing is stored; responders are core queue subscriptions, one member of each group per
//! request; the server answers "no responders" at once when nobody is subscribed. Signals go to
//! `<prefix>-signal.<subject>`, core publishes to plain subscriptions: every listener gets each.

use std::time::Duration;

use async_nats::client::RequestErrorKind;
use async_trait::async_trait;
use futures::StreamExt;

use ticketing_core::bus::{validate_member, validate_subject};
use ticketing_core::{BusError, IncomingRequest, OutgoingMessage, Replier, Reply, Responder};

use super::headers::{from_nats_headers, to_nats_headers};
use super::{NatsBus, backend};

impl NatsBus {
    fn rpc_subject(&self, subject: &str) -> String {
        format!("{}-rpc.{subject}", self.inner.config.subject_prefix)
    }

    fn signal_subject(&self, subject: &str) -> String {
        format!("{}-signal.{subject}", self.inner.config.subject_prefix)
    }

    /// A core publish to `<prefix>-signal.<subject>`, outside both streams.
    pub(super) async fn send_signal(
        &self,
        subject: &str,
        payload: bytes::Bytes,
    ) -> Result<(), BusError> {
        validate_subject(subject)?;
        self.inner
            .client
            .publish(self.signal_subject(subject), payload)
            .await
            .map_err(backend)
    }

    /// A core subscription to `<prefix>-signal.<subject>`, known to the server when this returns
    /// (so a signal sent after it reaches it).
    pub(super) async fn listen_signals(
        &self,
        subject: &str,
    ) -> Result<ticketing_core::bus::Signals, BusError> {
        validate_subject(subject)?;
        let subscriber = self
            .inner
            .client
            .subscribe(self.signal_subject(subject))
            .await
            .map_err(backend)?;
        self.inner.client.flush().await.map_err(backend)?;
        Ok(Box::pin(subscriber.map(|message| message.payload)))
    }

    pub(super) async fn send_request(
        &self,
        request: OutgoingMessage,
        timeout: Duration,
    ) -> Result<Reply, BusError> {
        validate_subject(&request.subject)?;
        let mut nats = async_nats::Request::new()
            .payload(request.payload)
            .timeout(Some(timeout));
        if !request.headers.is_empty() {
            nats = nats.headers(to_nats_headers(&request.headers)?);
        }
        match self
            .inner
            .client
            .send_request(self.rpc_subject(&request.subject), nats)
            .await
        {
            Ok(reply) => Ok(Reply {
                headers: from_nats_headers(reply.headers.as_ref()),
                payload: reply.payload,
            }),
            Err(e) => Err(match e.kind() {
                RequestErrorKind::NoResponders => BusError::NoResponders(request.subject),
                RequestErrorKind::TimedOut => {
                    BusError::Timeout(format!("no reply to {} in {timeout:?}", request.subject))
                }
                _ => backend(e),
            }),
        }
    }

    pub(super) async fn join_responders(
        &self,
        subject: &str,
        group: &str,
    ) -> Result<Box<dyn Responder>, BusError> {
        validate_member(&[subject], group)?;
        let subscriber = self
            .inner
            .client
            .queue_subscribe(self.rpc_subject(subject), group.to_owned())
            .await
            .map_err(backend)?;
        // The subscription is registered on the server before the first request is sent.
        self.inner.client.flush().await.map_err(backend)?;
        Ok(Box::new(NatsResponder {
            client: self.inner.client.clone(),
            subject: subject.to_owned(),
            subscriber,
        }))
    }
}

/// A member of a responder group: a core queue subscription.
struct NatsResponder {
    client: async_nats::Client,
    subject: String,
    subscriber: async_nats::Subscriber,
}

#[async_trait]
impl Responder for NatsResponder {
    async fn next(&mut self) -> Option<IncomingRequest> {
        loop {
            let message = self.subscriber.next().await?;
            // A plain publish on the subject asks nothing: there is no one to answer.
            let Some(reply_to) = message.reply else {
                continue;
            };
            let replier = NatsReplier {
                client: self.client.clone(),
                reply_to,
            };
            return Some(IncomingRequest::new(
                self.subject.clone(),
                message.payload,
                from_nats_headers(message.headers.as_ref()),
                Box::new(replier),
            ));
        }
    }

    async fn close(mut self: Box<Self>) -> Result<(), BusError> {
        self.subscriber.unsubscribe().await.map_err(backend)?;
        self.client.flush().await.map_err(backend)
    }
}

struct NatsReplier {
    client: async_nats::Client,
    reply_to: async_nats::Subject,
}

#[async_trait]
impl Replier for NatsReplier {
    async fn reply(self: Box<Self>, reply: Reply) -> Result<(), BusError> {
        let headers = to_nats_headers(&reply.headers)?;
        // Written by the client's connection task at once; no round trip to wait for.
        self.client
            .publish_with_headers(self.reply_to, headers, reply.payload)
            .await
            .map_err(backend)
    }
}
