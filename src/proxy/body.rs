//! Response bodies as the proxy hands them to its servers (boma's own HTTP/1.1 one and hyper):
//! a wrapper that keeps per-request guards (in-flight limits) alive and writes the access-log
//! line when the body has been sent or dropped, held as it is for the common answer (no
//! allocation, and the server can take the fields its upstream head passed on) or boxed for
//! the others.
//!
//! Nothing here buffers: frames pass through as they arrive.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;

use super::accesslog::{AccessLog, Record};
use super::forward::ResponseBody;
use super::h1;
use crate::runtime::middlewares::Guard;

pub use crate::runtime::middlewares::buffering::BoxError;

/// The body type of every response the proxy returns.
// The large variant is the common one, held unboxed on purpose: no allocation per answer.
#[allow(clippy::large_enum_variant)]
pub enum Body {
    /// An answer as it came back through the proxy.
    Tracked(Tracked<ResponseBody>),
    /// One a middleware made into another stream (compression).
    Boxed(BoxBody<Bytes, BoxError>),
}

impl Body {
    /// The answer's fields, when its upstream head passed them on as lines (once).
    pub fn take_passed(&mut self) -> Option<h1::Passed> {
        match self {
            Body::Tracked(Tracked {
                inner: ResponseBody::Own(own),
                ..
            }) => own.take_passed(),
            _ => None,
        }
    }
}

impl HttpBody for Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            Body::Tracked(b) => Pin::new(b).poll_frame(cx),
            Body::Boxed(b) => Pin::new(b).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Tracked(b) => b.is_end_stream(),
            Body::Boxed(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Tracked(b) => b.size_hint(),
            Body::Boxed(b) => b.size_hint(),
        }
    }
}

/// The body of a response a `compress` middleware chose to encode, gzip-encoded as it streams.
pub fn compressed<B>(
    headers: &mut http::HeaderMap,
    body: B,
    plan: crate::runtime::middlewares::compress::Plan,
) -> BoxBody<Bytes, BoxError>
where
    B: HttpBody<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
{
    use crate::runtime::middlewares::compress::{GzipBody, mark_encoded};
    mark_encoded(headers);
    GzipBody::new(body, plan.slot).boxed()
}

/// Runs at the end of a response: drops guards, writes the access log line, records the
/// request's metrics.
pub struct Finisher {
    pub guards: Vec<Guard>,
    pub log: Option<(AccessLog, Box<Record>)>,
    pub metrics: Option<Observe>,
    pub bytes: u64,
}

impl Drop for Finisher {
    fn drop(&mut self) {
        if let Some((log, mut record)) = self.log.take() {
            record.size = self.bytes;
            log.write(*record);
        }
        if let Some(o) = self.metrics.take() {
            let route = (o.route.as_deref()).map(|r| (r.name.as_str(), r.service_name.as_str()));
            o.registry.observe(
                o.shard,
                &crate::metrics::Request {
                    entrypoint: &o.ep.name,
                    route,
                    code: o.code,
                    method: o.method,
                    protocol: o.protocol,
                    seconds: o.started.elapsed().as_secs_f64(),
                    bytes: self.bytes,
                },
            );
        }
    }
}

/// A request's metric labels, kept until its answer has been sent.
pub struct Observe {
    pub registry: std::sync::Arc<crate::metrics::Registry>,
    /// The worker's shard.
    pub shard: usize,
    pub ep: std::sync::Arc<super::EntryPoint>,
    /// The router that took it, if one did.
    pub route: Option<std::sync::Arc<crate::dynamic::table::Route>>,
    pub method: u8,
    pub protocol: crate::metrics::Protocol,
    pub code: u16,
    pub started: std::time::Instant,
}

impl Observe {
    /// With the status code of the answer.
    pub fn answered(mut self, status: http::StatusCode) -> Observe {
        self.code = status.as_u16();
        self
    }
}

pin_project_lite::pin_project! {
    /// A body that counts bytes, runs its [`Finisher`] when dropped and, with a deadline (the
    /// entrypoint's `writeTimeout`), fails when the response is not sent in time.
    pub struct Tracked<B> {
        #[pin]
        inner: B,
        fin: Finisher,
        deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    }
}

impl<B> Tracked<B> {
    pub fn new(inner: B, fin: Finisher, deadline: Option<tokio::time::Instant>) -> Self {
        Tracked {
            inner,
            fin,
            deadline: deadline.map(|d| Box::pin(tokio::time::sleep_until(d))),
        }
    }
}

/// The response was not written within the entrypoint's `writeTimeout`.
#[derive(Debug, thiserror::Error)]
#[error("response not written within writeTimeout")]
pub struct WriteTimeout;

impl<B> HttpBody for Tracked<B>
where
    B: HttpBody<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        if let Some(deadline) = this.deadline.as_mut()
            && deadline.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Some(Err(Box::new(WriteTimeout))));
        }
        let polled = this.inner.poll_frame(cx).map_err(Into::into);
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
