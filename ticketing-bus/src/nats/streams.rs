//! The streams and consumers a NATS bus creates, and their names.

#[allow(clippy::wildcard_imports)]
use super::*;

pub(super) async fn ensure_stream(
    js: &async_nats::jetstream::Context,
    config: stream::Config,
) -> Result<stream::Stream, BusError> {
    let name = config.name.clone();
    match js.get_stream(&name).await {
        Ok(mut existing) => {
            let current = existing.info().await.map_err(backend)?.config.clone();
            for ours in &config.subjects {
                if !current.subjects.iter().any(|theirs| covers(theirs, ours)) {
                    return Err(backend(format!(
                        "stream {name} exists with subjects {:?}, which do not include {ours}: \
                         choose another stream (NATS_STREAM) or subject prefix \
                         (NATS_SUBJECT_PREFIX), or add {ours} to the stream",
                        current.subjects
                    )));
                }
            }
            Ok(existing)
        }
        Err(_) => js
            .get_or_create_stream(config)
            .await
            .map_err(|e| backend(format!("cannot create stream {name}: {e}"))),
    }
}

/// Gives an existing events stream the partition transform (a stream made before
/// partitions), and checks that the server kept it (a server older than 2.10 drops it).
pub(super) async fn ensure_transform(
    js: &async_nats::jetstream::Context,
    mut existing: stream::Stream,
    transform: stream::SubjectTransform,
) -> Result<stream::Stream, BusError> {
    let current = existing.info().await.map_err(backend)?.config.clone();
    if current.subject_transform.as_ref() == Some(&transform) {
        return Ok(existing);
    }
    let name = current.name.clone();
    let updated = js
        .update_stream(stream::Config {
            subject_transform: Some(transform.clone()),
            ..current
        })
        .await
        .map_err(|e| backend(format!("cannot give stream {name} partitions: {e}")))?;
    if updated.config.subject_transform.as_ref() != Some(&transform) {
        return Err(BusError::Unsupported(format!(
            "stream {name} did not keep the partition transform: partitions need nats-server 2.10 or later"
        )));
    }
    tracing::info!(stream = %name, destination = %transform.destination, "the events stream has partitions now");
    js.get_stream(&name).await.map_err(backend)
}

/// Whether the subject pattern `theirs` matches every subject `ours` matches (`*` one token,
/// `>` the rest).
pub(super) fn covers(theirs: &str, ours: &str) -> bool {
    let mut theirs = theirs.split('.');
    let mut ours = ours.split('.');
    loop {
        match (theirs.next(), ours.next()) {
            (Some(">"), Some(_)) => return true,
            (Some(_), Some(">")) => return false,
            (Some("*"), Some(_)) => {}
            (Some(t), Some(o)) if t == o => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// The durable consumer name of a queue group on a subject.
pub(super) fn consumer_name(group: &str, subject: &str) -> String {
    // An ordered group on one subject is named the same way.
    ticketing_core::bus::ordered_group_name(group, &[subject])
}
