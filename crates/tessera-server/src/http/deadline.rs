//! A deadline for request bodies.
//!
//! A client that sends a request's headers and then trickles its body (or
//! never sends it) would hold a connection and a task for as long as it
//! likes. The observe layer gives every request that has a body a
//! [`DeadlineBody`]: when the whole body has not arrived within the body
//! read timeout, reading it fails with [`BodyDeadline`], which the JSON
//! extractor answers with `408 VALIDATION_ERROR`; the connection then
//! closes, since its body was not read to the end.
//!
//! Requests without a body (validate, and every `GET` and `DELETE`) get no
//! timer, so the hot path pays nothing.

use std::error::Error;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use http_body::{Frame, SizeHint};
use tokio::time::Sleep;

/// How long a request body gets by default, from the end of the headers.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(15);

/// The error a body reports when its deadline passes.
#[derive(Debug)]
pub struct BodyDeadline;

impl fmt::Display for BodyDeadline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the request body did not arrive in time")
    }
}

impl Error for BodyDeadline {}

/// Whether `error`, or anything it was caused by, is a [`BodyDeadline`].
pub fn is_deadline(error: &(dyn Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(e) = next {
        if e.is::<BodyDeadline>() {
            return true;
        }
        next = e.source();
    }
    false
}

pin_project_lite::pin_project! {
    /// A request body that fails once `sleep` completes before it ends.
    pub struct DeadlineBody {
        #[pin]
        inner: Body,
        #[pin]
        sleep: Sleep,
    }
}

impl DeadlineBody {
    /// `body`, which must arrive whole within `timeout`.
    pub fn new(body: Body, timeout: Duration) -> Self {
        Self {
            inner: body,
            sleep: tokio::time::sleep(timeout),
        }
    }
}

impl HttpBody for DeadlineBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        // What has arrived is taken first: the deadline only ends a wait.
        if let Poll::Ready(frame) = this.inner.poll_frame(cx) {
            return Poll::Ready(frame);
        }
        match this.sleep.poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(axum::Error::new(BodyDeadline)))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
