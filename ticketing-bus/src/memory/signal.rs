//! Signals in memory: a broadcast channel per subject; nothing is stored, a signal nobody
//! listens to is dropped, a listener that falls behind skips the oldest.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use bytes::Bytes;
use tokio::sync::broadcast;

use ticketing_core::BusError;
use ticketing_core::bus::{Signals, validate_subject};

/// Signals a listener may fall behind by before it skips some.
const BACKLOG: usize = 1024;

/// The signal channels of a bus, by subject.
#[derive(Default)]
pub(super) struct SignalChannels {
    channels: Mutex<HashMap<String, broadcast::Sender<Bytes>>>,
}

impl SignalChannels {
    pub(super) fn send(&self, subject: &str, payload: Bytes) -> Result<(), BusError> {
        validate_subject(subject)?;
        let channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(sender) = channels.get(subject) {
            // No receiver left: dropped, as on NATS.
            let _ = sender.send(payload);
        }
        Ok(())
    }

    pub(super) fn listen(&self, subject: &str) -> Result<Signals, BusError> {
        validate_subject(subject)?;
        let mut channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        let receiver = channels
            .entry(subject.to_owned())
            .or_insert_with(|| broadcast::channel(BACKLOG).0)
            .subscribe();
        let signals = futures::stream::unfold(receiver, |mut receiver| async move {
            loop {
                match receiver.recv().await {
                    Ok(payload) => return Some((payload, receiver)),
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        });
        Ok(Box::pin(signals))
    }
}
