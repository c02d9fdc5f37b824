//! A background task the SDK runs (a listener, a relay, a responder) and the token that stops it.

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A spawned task with its cancellation token: what each of the SDK's handles holds.
#[derive(Debug)]
pub(crate) struct Task {
    token: CancellationToken,
    task: JoinHandle<()>,
}

impl Task {
    /// Runs `work` on a new task, which is to stop once `token` is cancelled.
    pub(crate) fn spawn(
        token: CancellationToken,
        work: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Self {
        Task {
            token,
            task: tokio::spawn(work),
        }
    }

    /// Whether the task ended.
    pub(crate) fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Cancels the token and waits for the task to end; a task that panicked is logged as the
    /// `what` that failed.
    pub(crate) async fn stop(self, what: &str) {
        self.token.cancel();
        self.join(what).await;
    }

    /// Waits for the task to end by itself or through its token.
    pub(crate) async fn join(self, what: &str) {
        if let Err(error) = self.task.await {
            tracing::error!(%error, "{what} task failed");
        }
    }
}
