//! Request bodies on a clock. [`ReadBy`] is the entrypoint's `readTimeout` for a body: read whole
//! within it of the request's head, or given up (a client that stalls its upload holds neither
//! its connection nor a server's for longer, as Traefik's server gives it up). [`Sent`] tells
//! when a body has been handed over whole (or dropped), for the response timeout that runs from
//! then.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::Notify;
use tokio::time::Sleep;

use super::UpBody;
use crate::runtime::middlewares::buffering::BoxError;

/// A request body that must be read whole within a time of the request's head (`readTimeout`);
/// past it, the next read is an error that names the limit.
pub struct ReadBy {
    inner: UpBody,
    deadline: Pin<Box<Sleep>>,
    limit: Duration,
}

impl ReadBy {
    /// `inner`, to be read whole within `limit` from now.
    pub fn new(inner: UpBody, limit: Duration) -> Self {
        ReadBy {
            inner,
            deadline: Box::pin(tokio::time::sleep(limit)),
            limit,
        }
    }

    fn late(&self) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let why = format!(
            "request body not read whole within readTimeout ({:?})",
            self.limit
        );
        Poll::Ready(Some(Err(why.into())))
    }
}

impl Body for ReadBy {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.deadline.is_elapsed() {
            return self.late();
        }
        match Pin::new(&mut self.inner).poll_frame(cx) {
            // Waiting for the client: woken by the deadline too.
            Poll::Pending if self.deadline.as_mut().poll(cx).is_ready() => self.late(),
            polled => polled,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A request body that tells when it has been handed over whole, so that the response timeout
/// runs from then, as Traefik's `responseHeaderTimeout` runs from the request's last byte: an
/// upload that takes longer than the timeout is not cut, a server that then keeps its answer
/// back is.
pub(super) struct Sent {
    inner: UpBody,
    whole: Arc<Notify>,
}

impl Sent {
    /// `inner`, notifying `whole` once it has been handed over whole.
    pub(super) fn new(inner: UpBody, whole: Arc<Notify>) -> Self {
        Sent { inner, whole }
    }
}

impl Body for Sent {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        let whole = match &polled {
            Poll::Ready(None) => true,
            Poll::Ready(Some(Ok(_))) => self.inner.is_end_stream(),
            Poll::Ready(Some(Err(_))) | Poll::Pending => false,
        };
        if whole {
            self.whole.notify_one();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        let end = self.inner.is_end_stream();
        if end {
            self.whole.notify_one();
        }
        end
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Sent {
    /// A client may stop polling a body it has sent whole without asking for more (hyper does
    /// once it has written the Content-Length it was given, or the trailers), or give up on it:
    /// either way the wait for the answer starts.
    fn drop(&mut self) {
        self.whole.notify_one();
    }
}
