//! Sending one request to one server: boma's own HTTP/1 client for `http://` servers without a
//! request body, hyper-util's for the rest (`https://`, `h2c://`, bodies), under the response
//! timeout; the response body either client gives back; and the server's half of an upgraded
//! (WebSocket) connection.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, Uri, Version, request};
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use hyper::body::{Body, Incoming};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::sync::Notify;

use super::Deferred;
use super::timed::Sent;
use crate::proxy::connect::{Connector, UpstreamTls};
use crate::proxy::error::ProxyError;
use crate::proxy::h1;
use crate::runtime::balance::{Protocol, Server};
use crate::runtime::middlewares::buffering::BoxError;

/// Request body type sent upstream: the client's stream, or a body a buffering middleware read.
pub type UpBody = BoxBody<Bytes, BoxError>;

/// Tunables of the upstream side (from `[limits]`).
#[derive(Debug, Clone)]
pub struct UpstreamLimits {
    /// TLS towards `https://` servers (`[serversTransport]`).
    pub tls: Arc<UpstreamTls>,
    pub connect_timeout: Duration,
    pub response_timeout: Option<Duration>,
    pub idle_per_host: usize,
    pub idle_timeout: Duration,
    pub passive_cooldown: Duration,
}

/// A worker's upstream clients: boma's own HTTP/1 client for `http://` servers, hyper-util's
/// for `https://` and `h2c://` ones.
pub struct Upstream {
    h1: Arc<h1::Pool>,
    http1: Client<Connector, UpBody>,
    h2c: Client<Connector, UpBody>,
    limits: UpstreamLimits,
}

impl Upstream {
    /// Called on the worker's runtime (the HTTP/1 pool's sweeper runs there).
    pub fn new(limits: UpstreamLimits) -> Self {
        let mut conn = HttpConnector::new();
        conn.set_connect_timeout(Some(limits.connect_timeout));
        conn.set_nodelay(true);
        let build = |h2: bool| {
            let mut b = Client::builder(TokioExecutor::new());
            b.timer(TokioTimer::new())
                .pool_timer(TokioTimer::new())
                .pool_idle_timeout(limits.idle_timeout)
                .pool_max_idle_per_host(limits.idle_per_host)
                .http2_only(h2);
            b.build(Connector::new(conn.clone(), limits.tls.clone()))
        };
        Upstream {
            h1: h1::Pool::new(limits.idle_per_host, limits.idle_timeout, conn.clone()),
            http1: build(false),
            h2c: build(true),
            limits,
        }
    }

    /// How long a server that failed to connect or answer in time is passed over.
    pub(super) fn passive_cooldown(&self) -> Duration {
        self.limits.passive_cooldown
    }

    /// One exchange with `server`, under the response timeout. `head` is only read by boma's
    /// own client; hyper-util's takes it, or a copy of it when `again` (another attempt may
    /// need it). `pass_fields`: see [`h1::Target`]. `forwarded`: the request's forwarded fields
    /// when they are not in its map; boma's client writes them, hyper's finds them put there.
    pub(super) async fn send(
        &self,
        server: &Server,
        head: &mut request::Parts,
        body: Option<UpBody>,
        (again, pass_fields): (bool, bool),
        forwarded: Option<&mut Option<Deferred>>,
    ) -> Result<Response<ResponseBody>, SendError> {
        // Requests with a body stay with hyper-util (full duplex, length counted). boma's own
        // client keeps the response timeout itself (a timer kept with each connection).
        let plain = server.protocol == Protocol::Http1 && server.scheme == http::uri::Scheme::HTTP;
        if !(plain && body.is_none()) {
            if let Some(fields) = forwarded.and_then(Option::take) {
                // Into the map for good: a later attempt finds them there.
                fields.insert_into(&mut head.headers);
            }
            let head = if again {
                head.clone()
            } else {
                take_parts(head)
            };
            // Boxed: hyper's future is large and this path is the rarer one; the common one's
            // future stays small.
            return Box::pin(self.send_hyper_timed(server, head, body)).await;
        }
        use h1::{Error, Target};
        let fields = (forwarded.as_deref())
            .and_then(Option::as_ref)
            .map(Deferred::fields);
        let target = Target {
            extra: fields.as_ref().map_or(&[][..], |f| &f[..]),
            authority: &server.authority,
            path_prefix: &server.path_prefix,
            response_timeout: self.limits.response_timeout,
            pass_fields,
        };
        match h1::send(&self.h1, &target, head).await {
            Ok(response) => Ok(response.map(ResponseBody::Own)),
            Err(Error::ConnectTimeout | Error::ResponseTimeout) => Err(SendError::Timeout),
            Err(Error::Connect(why)) => Err(SendError::Connect(why)),
            Err(e) => Err(SendError::Other(e.to_string())),
        }
    }

    /// [`Self::send_hyper`] under the response timeout, which runs from when the request's body
    /// (if any) has been handed over whole.
    async fn send_hyper_timed(
        &self,
        server: &Server,
        head: request::Parts,
        body: Option<UpBody>,
    ) -> Result<Response<ResponseBody>, SendError> {
        let Some(limit) = self.limits.response_timeout else {
            return self.send_hyper(server, head, body).await;
        };
        let whole = Arc::new(Notify::new());
        let body = match body {
            Some(inner) if !inner.is_end_stream() => {
                Some(Sent::new(inner, Arc::clone(&whole)).boxed())
            }
            body => {
                whole.notify_one();
                body
            }
        };
        let answer_due = async {
            whole.notified().await;
            tokio::time::sleep(limit).await;
        };
        tokio::select! {
            biased;
            answer = self.send_hyper(server, head, body) => answer,
            () = answer_due => Err(SendError::Timeout),
        }
    }

    async fn send_hyper(
        &self,
        server: &Server,
        mut head: request::Parts,
        body: Option<UpBody>,
    ) -> Result<Response<ResponseBody>, SendError> {
        head.uri = upstream_uri(server, &head.uri).map_err(|e| SendError::Other(e.to_string()))?;
        head.version = match server.protocol {
            Protocol::Http1 => Version::HTTP_11,
            Protocol::H2c => Version::HTTP_2,
        };
        let body: UpBody = match body {
            Some(b) => b,
            None => http_body_util::Empty::new()
                .map_err(|never| match never {})
                .boxed(),
        };
        let client = match server.protocol {
            Protocol::Http1 => &self.http1,
            Protocol::H2c => &self.h2c,
        };
        let res = client.request(Request::from_parts(head, body)).await;
        res.map(|r| r.map(ResponseBody::Hyper)).map_err(|e| {
            if e.is_connect() {
                // hyper-util reports its own connect timeout as a connect error whose source is
                // an io::Error of kind TimedOut.
                if io_kind(&e) == Some(std::io::ErrorKind::TimedOut) {
                    SendError::Timeout
                } else {
                    SendError::Connect(error_chain(&e))
                }
            } else {
                SendError::Other(error_chain(&e))
            }
        })
    }
}

/// A response body: from boma's HTTP/1 client or from hyper's, an answer made here, or one a
/// buffering middleware read whole.
pub enum ResponseBody {
    Own(h1::Body),
    Hyper(Incoming),
    Local(http_body_util::Full<Bytes>),
    Boxed(BoxBody<Bytes, BoxError>),
}

impl ResponseBody {
    /// A small answer made by the proxy.
    pub fn local(bytes: Bytes) -> Self {
        ResponseBody::Local(http_body_util::Full::new(bytes))
    }
}

impl http_body::Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            ResponseBody::Own(b) => std::pin::Pin::new(b).poll_frame(cx).map_err(Into::into),
            ResponseBody::Hyper(b) => std::pin::Pin::new(b).poll_frame(cx).map_err(Into::into),
            ResponseBody::Local(b) => std::pin::Pin::new(b)
                .poll_frame(cx)
                .map_err(|never| match never {}),
            ResponseBody::Boxed(b) => std::pin::Pin::new(b).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Own(b) => b.is_end_stream(),
            ResponseBody::Hyper(b) => b.is_end_stream(),
            ResponseBody::Local(b) => b.is_end_stream(),
            ResponseBody::Boxed(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self {
            ResponseBody::Own(b) => b.size_hint(),
            ResponseBody::Hyper(b) => b.size_hint(),
            ResponseBody::Local(b) => b.size_hint(),
            ResponseBody::Boxed(b) => b.size_hint(),
        }
    }
}

/// `head`'s contents, moved out (an empty head left in its place).
fn take_parts(head: &mut request::Parts) -> request::Parts {
    let empty = Request::new(()).into_parts().0;
    std::mem::replace(head, empty)
}

/// Why an exchange failed, as the retry and the passive mark need it.
pub(super) enum SendError {
    Connect(String),
    Timeout,
    Other(String),
}

/// The kind of the first io::Error in `e`'s source chain.
pub fn io_kind(e: &(dyn std::error::Error + 'static)) -> Option<std::io::ErrorKind> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        cur = err.source();
    }
    None
}

/// `e` and its sources, joined by ": ".
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

/// The request URI for `server`: its scheme and authority, optional path prefix, the request's
/// path and query.
fn upstream_uri(server: &Server, original: &Uri) -> Result<Uri, ProxyError> {
    let builder = Uri::builder()
        .scheme(server.scheme.clone())
        .authority(server.authority.clone());
    let builder = if server.path_prefix.is_empty() {
        // Shares the original bytes: no copy on the common path.
        match original.path_and_query() {
            Some(pq) => builder.path_and_query(pq.clone()),
            None => builder.path_and_query("/"),
        }
    } else {
        let pq = original.path_and_query().map_or("/", |p| p.as_str());
        builder.path_and_query(format!("{}{}", server.path_prefix, pq))
    };
    builder
        .build()
        .map_err(|e| ProxyError::Upstream(format!("bad upstream uri: {e}")))
}

/// Both halves of a protocol switch (WebSocket): the client's connection, handed over by hyper
/// once the 101 has gone through, and the server's. The entrypoint joins them.
pub struct Upgrade {
    pub client: hyper::upgrade::OnUpgrade,
    pub upstream: UpstreamUpgrade,
}

/// The server's side of a protocol switch.
pub enum UpstreamUpgrade {
    /// boma's HTTP/1 client hands its connection over at once.
    Own(h1::Upgraded),
    /// hyper's client hands it over once its connection task lets go.
    Hyper(hyper::upgrade::OnUpgrade),
}

/// Something to splice an upgraded connection with.
pub trait SpliceIo: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> SpliceIo for T {}

impl UpstreamUpgrade {
    /// The server's side of a 101 `response` (its body is spent).
    pub fn of(response: &mut Response<ResponseBody>) -> Option<UpstreamUpgrade> {
        match response.body_mut() {
            ResponseBody::Own(body) => body.take_upgraded().map(UpstreamUpgrade::Own),
            ResponseBody::Hyper(_) => Some(UpstreamUpgrade::Hyper(hyper::upgrade::on(response))),
            ResponseBody::Local(_) | ResponseBody::Boxed(_) => None,
        }
    }

    /// The connection, once handed over.
    pub async fn ready(self) -> Result<Box<dyn SpliceIo>, hyper::Error> {
        match self {
            UpstreamUpgrade::Own(io) => Ok(Box::new(io)),
            UpstreamUpgrade::Hyper(on) => Ok(Box::new(hyper_util::rt::TokioIo::new(on.await?))),
        }
    }
}

impl std::fmt::Debug for Upgrade {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Upgrade")
    }
}
