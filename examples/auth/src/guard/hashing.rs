//! Password hashing on threads of its own, bounded to what the machine can do.

#[allow(clippy::wildcard_imports)]
use super::*;

/// Runs password hashes on `workers` threads of their own, with at most `queue` more waiting; a
/// request past that is refused with 503 at once instead of piling up memory.
///
/// Own threads rather than tokio's blocking pool: each argon2id hash takes 19 MiB, and the
/// allocator keeps what a thread freed for that thread's next allocation. On the blocking pool,
/// whose threads come and go by the dozen, that retained memory grew to some 650 MB under a
/// burst of sign-ups; on two long-lived threads it stays at about two hashes' worth.
#[derive(Clone)]
pub struct Hashing {
    workers: Arc<Semaphore>,
    waiting: Arc<AtomicUsize>,
    queue: usize,
    jobs: std::sync::mpsc::Sender<Job>,
}

/// A hash to run on a hashing thread.
type Job = Box<dyn FnOnce() + Send>;

/// Leaves the queue when dropped.
struct InQueue<'a>(&'a AtomicUsize);

impl Drop for InQueue<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Hashing {
    /// At most `workers` hashes at once (at least one), `queue` waiting.
    pub fn new(workers: usize, queue: usize) -> Self {
        let workers = workers.max(1);
        let (jobs, queued) = std::sync::mpsc::channel::<Job>();
        let queued = Arc::new(Mutex::new(queued));
        for n in 0..workers {
            let queued = queued.clone();
            // The threads end when every `Hashing` is dropped (the channel closes).
            let _ = std::thread::Builder::new()
                .name(format!("password-hashing-{n}"))
                .spawn(move || {
                    loop {
                        let job = queued.lock().unwrap_or_else(PoisonError::into_inner).recv();
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                });
        }
        Hashing {
            workers: Arc::new(Semaphore::new(workers)),
            waiting: Arc::new(AtomicUsize::new(0)),
            queue,
            jobs,
        }
    }

    /// Runs `work` when a worker is free; 503 when the queue is full.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let permit = match self.workers.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                let place = InQueue(&self.waiting);
                if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.queue {
                    drop(place);
                    return Err(ApiError::Busy { retry_after: 1 });
                }
                let permit = self
                    .workers
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(ApiError::internal)?;
                drop(place);
                permit
            }
        };
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _permit = permit;
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
            let _ = done.send(outcome);
        });
        self.jobs
            .send(job)
            .map_err(|_| ApiError::internal(anyhow::anyhow!("the hashing threads are gone")))?;
        match result.await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(_panic)) => Err(ApiError::internal(anyhow::anyhow!(
                "password hashing panicked"
            ))),
            Err(_) => Err(ApiError::internal(anyhow::anyhow!(
                "the hashing thread went away"
            ))),
        }
    }
}
