//! Response bodies as the proxy hands them to hyper: one boxed type for upstream streams and small
//! local answers, and a wrapper that keeps per-request guards (in-flight limits) alive and writes
//! the access-log line when the body has been sent or dropped.
//!
//! Nothing here buffers: frames pass through as they arrive.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;

use super::accesslog::{AccessLog, Record};
use super::middlewares::Guard;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The body type of every response the proxy returns.
pub type Body = BoxBody<Bytes, BoxError>;

pub fn full(bytes: Bytes) -> Body {
    http_body_util::Full::new(bytes)
        .map_err(|never| match never {})
        .boxed()
}

pub fn empty() -> Body {
    http_body_util::Empty::new()
        .map_err(|never| match never {})
        .boxed()
}

/// Runs at the end of a response: drops guards, writes the access log line.
pub struct Finisher {
    pub guards: Vec<Guard>,
    pub log: Option<(AccessLog, Record)>,
    pub bytes: u64,
}

impl Drop for Finisher {
    fn drop(&mut self) {
        if let Some((log, mut record)) = self.log.take() {
            record.size = self.bytes;
            log.write(record);
        }
    }
}

pin_project_lite::pin_project! {
    /// A body that counts bytes and runs its [`Finisher`] when dropped.
    pub struct Tracked<B> {
        #[pin]
        inner: B,
        fin: Finisher,
    }
}

impl<B> Tracked<B> {
    pub fn new(inner: B, fin: Finisher) -> Self {
        Tracked { inner, fin }
    }
}

impl<B> HttpBody for Tracked<B>
where
    B: HttpBody<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            this.fin.bytes += data.len() as u64;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
