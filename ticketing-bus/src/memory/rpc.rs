//! Request/reply in memory: responder groups per subject, one member of each group per
//! request (round robin), the first reply wins; nothing is stored, on tokio time.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;

use ticketing_core::bus::{validate_member, validate_subject};
use ticketing_core::{BusError, IncomingRequest, OutgoingMessage, Replier, Reply, Responder};

type MemberId = u64;

/// The responder groups of a bus.
#[derive(Default)]
pub(super) struct Rpc {
    inner: Mutex<Groups>,
}

#[derive(Default)]
struct Groups {
    /// Subject → group → its members.
    subjects: HashMap<String, BTreeMap<String, Members>>,
    next_member: MemberId,
}

#[derive(Default)]
struct Members {
    members: Vec<(MemberId, mpsc::UnboundedSender<IncomingRequest>)>,
    next: usize,
}

impl Rpc {
    fn groups(&self) -> std::sync::MutexGuard<'_, Groups> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Joins `group` on `subject`.
    pub(super) fn respond(
        self: &Arc<Self>,
        subject: &str,
        group: &str,
    ) -> Result<Box<dyn Responder>, BusError> {
        validate_member(&[subject], group)?;
        let (sender, requests) = mpsc::unbounded_channel();
        let mut groups = self.groups();
        let id = groups.next_member;
        groups.next_member += 1;
        groups
            .subjects
            .entry(subject.to_owned())
            .or_default()
            .entry(group.to_owned())
            .or_default()
            .members
            .push((id, sender));
        Ok(Box::new(MemoryResponder {
            rpc: self.clone(),
            subject: subject.to_owned(),
            group: group.to_owned(),
            id,
            requests,
        }))
    }

    /// Sends `request` to one member of each group and waits for the first reply.
    pub(super) async fn request(
        &self,
        request: OutgoingMessage,
        timeout: Duration,
    ) -> Result<Reply, BusError> {
        validate_subject(&request.subject)?;
        let deadline = tokio::time::Instant::now() + timeout;
        let (replies, mut first) = mpsc::channel(1);
        let mut reached = 0;
        {
            let mut groups = self.groups();
            let Some(subject) = groups.subjects.get_mut(&request.subject) else {
                return Err(BusError::NoResponders(request.subject));
            };
            for members in subject.values_mut() {
                members.members.retain(|(_, sender)| !sender.is_closed());
                if members.members.is_empty() {
                    continue;
                }
                members.next = (members.next + 1) % members.members.len();
                let incoming = IncomingRequest::new(
                    request.subject.clone(),
                    request.payload.clone(),
                    request.headers.clone(),
                    Box::new(MemoryReplier(replies.clone())),
                );
                if members.members[members.next].1.send(incoming).is_ok() {
                    reached += 1;
                }
            }
        }
        drop(replies);
        if reached == 0 {
            return Err(BusError::NoResponders(request.subject));
        }
        let timed_out =
            || BusError::Timeout(format!("no reply to {} in {timeout:?}", request.subject));
        match tokio::time::timeout_at(deadline, first.recv()).await {
            Ok(Some(reply)) => Ok(reply),
            // Every member dropped it unanswered: the requester still waits out its timeout,
            // as it would on a broker.
            Ok(None) => {
                tokio::time::sleep_until(deadline).await;
                Err(timed_out())
            }
            Err(_) => Err(timed_out()),
        }
    }

    fn leave(&self, subject: &str, group: &str, id: MemberId) {
        let mut groups = self.groups();
        if let Some(members) = groups
            .subjects
            .get_mut(subject)
            .and_then(|groups| groups.get_mut(group))
        {
            members.members.retain(|(member, _)| *member != id);
        }
    }
}

/// A member of a responder group in memory.
struct MemoryResponder {
    rpc: Arc<Rpc>,
    subject: String,
    group: String,
    id: MemberId,
    requests: mpsc::UnboundedReceiver<IncomingRequest>,
}

#[async_trait]
impl Responder for MemoryResponder {
    async fn next(&mut self) -> Option<IncomingRequest> {
        self.requests.recv().await
    }

    async fn close(self: Box<Self>) -> Result<(), BusError> {
        Ok(())
    }
}

impl Drop for MemoryResponder {
    fn drop(&mut self) {
        self.rpc.leave(&self.subject, &self.group, self.id);
    }
}

/// Hands a reply to the waiting requester; later replies (other groups) are dropped.
struct MemoryReplier(mpsc::Sender<Reply>);

#[async_trait]
impl Replier for MemoryReplier {
    async fn reply(self: Box<Self>, reply: Reply) -> Result<(), BusError> {
        let _ = self.0.try_send(reply);
        Ok(())
    }
}
