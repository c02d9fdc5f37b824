//! The guards around the handler: a panic caught as a permanent failure, a timeout as a
//! retryable one.

#[allow(clippy::wildcard_imports)]
use super::*;

/// A panicking handler is a permanent failure with the panic's message.
#[derive(Debug, Clone, Copy, Default)]
pub struct CatchPanicLayer;

impl<S> tower::Layer<S> for CatchPanicLayer {
    type Service = CatchPanic<S>;
    fn layer(&self, inner: S) -> CatchPanic<S> {
        CatchPanic(inner)
    }
}

/// See [`CatchPanicLayer`].
#[derive(Debug, Clone)]
pub struct CatchPanic<S>(S);

impl<S> tower::Service<Incoming> for CatchPanic<S>
where
    S: tower::Service<Incoming, Response = (), Error = HandlerError>,
{
    type Response = ();
    type Error = HandlerError;
    type Future = futures::future::Map<
        futures::future::CatchUnwind<AssertUnwindSafe<S::Future>>,
        fn(Result<Result<(), HandlerError>, Box<dyn Any + Send>>) -> Result<(), HandlerError>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), HandlerError>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, incoming: Incoming) -> Self::Future {
        AssertUnwindSafe(self.0.call(incoming))
            .catch_unwind()
            .map(|handled| {
                handled.unwrap_or_else(|panic| {
                    Err(HandlerError::permanent(format!(
                        "handler panicked: {}",
                        panic_message(&*panic)
                    )))
                })
            })
    }
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

// -------------------------------------------------------------------------------------------
// Timeout.

/// A handler that takes longer than the limit is a retryable failure (none: no limit).
#[derive(Debug, Clone, Copy, Default)]
pub struct TimeoutLayer(pub Option<Duration>);

impl<S> tower::Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;
    fn layer(&self, inner: S) -> Timeout<S> {
        Timeout {
            inner,
            limit: self.0,
        }
    }
}

/// See [`TimeoutLayer`].
#[derive(Debug, Clone)]
pub struct Timeout<S> {
    inner: S,
    limit: Option<Duration>,
}

impl<S> tower::Service<Incoming> for Timeout<S>
where
    S: tower::Service<Incoming, Response = (), Error = HandlerError>,
{
    type Response = ();
    type Error = HandlerError;
    type Future = TimedOut<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), HandlerError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, incoming: Incoming) -> Self::Future {
        TimedOut {
            handled: self.inner.call(incoming),
            // Boxed: without a limit the future carries no timer, only a pointer.
            limit: self.limit.map(|limit| Box::pin(tokio::time::sleep(limit))),
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`Timeout`]: the handling, or a retry once the limit passed.
    pub struct TimedOut<F> {
        #[pin]
        handled: F,
        limit: Option<Pin<Box<tokio::time::Sleep>>>,
    }
}

impl<F: Future<Output = Result<(), HandlerError>>> Future for TimedOut<F> {
    type Output = Result<(), HandlerError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(handled) = this.handled.poll(cx) {
            return Poll::Ready(handled);
        }
        let timed_out = this
            .limit
            .as_mut()
            .is_some_and(|limit| limit.as_mut().poll(cx).is_ready());
        if timed_out {
            Poll::Ready(Err(HandlerError::retry("the handler timed out")))
        } else {
            Poll::Pending
        }
    }
}
