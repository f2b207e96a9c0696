//! The upstream side of the proxy: rewriting the request for a server (hop-by-hop headers,
//! X-Forwarded-*, Host), picking servers, sending through a bounded keep-alive pool, retrying what
//! is safe to retry, marking failing servers, and splicing upgraded (WebSocket) connections.
//!
//! It must never buffer a body: requests and responses stream. A request is retried only when it
//! failed before any response byte *and* its body is empty, so nothing is ever replayed half-sent.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, Uri, Version, request};
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;

use super::connect::Connector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::error::ProxyError;
use crate::runtime::balance::{LoadBalancer, Protocol, Server, Service};

/// Request body type sent upstream: the client's stream, or a body a buffering middleware read.
pub type UpBody = BoxBody<Bytes, super::body::BoxError>;

/// Tunables of the upstream side (from `[limits]`).
#[derive(Debug, Clone)]
pub struct UpstreamLimits {
    /// TLS towards `https://` servers (`[serversTransport]`).
    pub tls: Arc<super::connect::UpstreamTls>,
    pub connect_timeout: Duration,
    pub response_timeout: Option<Duration>,
    pub idle_per_host: usize,
    pub idle_timeout: Duration,
    pub passive_cooldown: Duration,
}

/// A worker's upstream clients: boma's own HTTP/1 client for `http://` servers, hyper-util's
/// for `https://` and `h2c://` ones.
pub struct Upstream {
    h1: Arc<super::h1::Pool>,
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
            h1: super::h1::Pool::new(limits.idle_per_host, limits.idle_timeout, conn.clone()),
            http1: build(false),
            h2c: build(true),
            limits,
        }
    }

    async fn send(
        &self,
        server: &Server,
        head: request::Parts,
        body: Option<UpBody>,
    ) -> Result<Response<ResponseBody>, SendError> {
        let exchange = async {
            // Requests with a body stay with hyper-util (full duplex, length counted).
            let plain =
                server.protocol == Protocol::Http1 && server.scheme == http::uri::Scheme::HTTP;
            if plain && body.is_none() {
                self.send_h1(server, head).await
            } else {
                self.send_hyper(server, head, body).await
            }
        };
        match self.limits.response_timeout {
            Some(limit) => match tokio::time::timeout(limit, exchange).await {
                Ok(r) => r,
                Err(_) => Err(SendError::Timeout),
            },
            None => exchange.await,
        }
    }

    async fn send_h1(
        &self,
        server: &Server,
        head: request::Parts,
    ) -> Result<Response<ResponseBody>, SendError> {
        use super::h1::{Error, Target};
        let target = Target {
            authority: &server.authority,
            path_prefix: &server.path_prefix,
        };
        let sent = super::h1::send(&self.h1, &target, &head).await;
        super::h1::spare::give(head.headers);
        match sent {
            Ok(response) => Ok(response.map(ResponseBody::Own)),
            Err(Error::ConnectTimeout) => Err(SendError::Timeout),
            Err(Error::Connect(why)) => Err(SendError::Connect(why)),
            Err(e) => Err(SendError::Other(e.to_string())),
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
    Own(super::h1::Body),
    Hyper(Incoming),
    Local(http_body_util::Full<Bytes>),
    Boxed(BoxBody<Bytes, super::body::BoxError>),
}

impl ResponseBody {
    /// A small answer made by the proxy.
    pub fn local(bytes: Bytes) -> Self {
        ResponseBody::Local(http_body_util::Full::new(bytes))
    }
}

impl http_body::Body for ResponseBody {
    type Data = Bytes;
    type Error = super::body::BoxError;

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

enum SendError {
    Connect(String),
    Timeout,
    Other(String),
}

/// The kind of the first io::Error in `e`'s source chain.
pub(super) fn io_kind(e: &(dyn std::error::Error + 'static)) -> Option<std::io::ErrorKind> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        cur = err.source();
    }
    None
}

pub(super) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

/// Facts about the downstream connection the forwarder needs.
#[derive(Debug, Clone)]
pub struct Downstream {
    pub client_ip: IpAddr,
    /// `client_ip` as a header value.
    pub client_ip_header: HeaderValue,
    /// "http" or "https".
    pub scheme: &'static str,
    /// Keep incoming X-Forwarded-* (the client is a trusted proxy).
    pub trusted: bool,
    /// This host's name, for X-Forwarded-Server.
    pub server_name: HeaderValue,
}

/// How many attempts and how long to wait before the first retry.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub initial_interval: Duration,
}

const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// Is this request asking for a protocol upgrade (WebSocket and friends)?
pub fn upgrade_requested(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// Remove hop-by-hop headers, including those named in Connection. With `keep_upgrade`, the
/// Upgrade header and a `Connection: upgrade` survive.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    // Fast path: one pass over the (few) names instead of a dozen hash lookups.
    if !keep_upgrade
        && !headers
            .keys()
            .any(|k| *k == header::UPGRADE || HOP_BY_HOP.contains(k))
    {
        return;
    }
    let trailers_ok = headers
        .get_all(header::TE)
        .iter()
        .any(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers"));
    // The fields Connection names go too (RFC 9110 §7.6.1), Connection itself last. Removed
    // one at a time, each found among the (few) names present: no list built, no header name
    // made from a token.
    let doomed = |headers: &HeaderMap, k: &HeaderName| {
        *k != header::CONNECTION
            && !(keep_upgrade && *k == header::UPGRADE)
            && (HOP_BY_HOP.contains(k)
                || (headers.get_all(header::CONNECTION).iter())
                    .flat_map(|v| v.as_bytes().split(|b| *b == b','))
                    .any(|t| t.trim_ascii().eq_ignore_ascii_case(k.as_str().as_bytes())))
    };
    while let Some(name) = headers.keys().find(|k| doomed(headers, k)).cloned() {
        headers.remove(&name);
    }
    headers.remove(header::CONNECTION);
    if trailers_ok {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
    if keep_upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(header::UPGRADE);
    }
}

static XFF: HeaderName = HeaderName::from_static("x-forwarded-for");
static XFPROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static XFHOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static XFPORT: HeaderName = HeaderName::from_static("x-forwarded-port");
static XFSERVER: HeaderName = HeaderName::from_static("x-forwarded-server");
static XREALIP: HeaderName = HeaderName::from_static("x-real-ip");
/// What Traefik removes from an untrusted client and does not set itself: a backend (or a
/// forwardAuth server) must never believe a client's claim of them.
const UNTRUSTED_ONLY_REMOVED: [HeaderName; 5] = [
    HeaderName::from_static("x-forwarded-prefix"),
    HeaderName::from_static("x-forwarded-uri"),
    HeaderName::from_static("x-forwarded-method"),
    HeaderName::from_static("x-forwarded-tls-client-cert"),
    HeaderName::from_static("x-forwarded-tls-client-cert-info"),
];

/// Set X-Forwarded-* (but For) and X-Real-Ip as Traefik's entrypoint does, before the router's
/// middlewares run: from an untrusted client, incoming values are replaced; from a trusted one
/// they are kept.
pub fn set_forwarded(
    headers: &mut HeaderMap,
    host: &HeaderValue,
    down: &Downstream,
    upgrade: bool,
) {
    // Room for the six added here at once, not in several doublings.
    headers.reserve(6);
    if !down.trusted
        && headers.keys().any(|k| {
            let n = k.as_str();
            n.starts_with("x-forwarded-") || n == "x-real-ip"
        })
    {
        for h in [&XFF, &XFPROTO, &XFHOST, &XFPORT, &XFSERVER, &XREALIP] {
            headers.remove(h);
        }
        for h in UNTRUSTED_ONLY_REMOVED {
            headers.remove(h);
        }
    }
    // One hash of each name (an entry), where a lookup and then an insert would take two.
    let set = |headers: &mut HeaderMap, name: &HeaderName, value: &dyn Fn() -> HeaderValue| {
        if let header::Entry::Vacant(v) = headers.entry(name) {
            v.insert(value());
        }
    };
    set(headers, &XFPROTO, &|| {
        HeaderValue::from_static(match (upgrade, down.scheme) {
            (true, "https") => "wss",
            (true, _) => "ws",
            (false, "https") => "https",
            (false, _) => "http",
        })
    });
    set(headers, &XFHOST, &|| host.clone());
    set(headers, &XFPORT, &|| {
        let default = if down.scheme == "https" { 443 } else { 80 };
        match (host.to_str().ok()).and_then(port_of).unwrap_or(default) {
            80 => HeaderValue::from_static("80"),
            443 => HeaderValue::from_static("443"),
            p => HeaderValue::from(p),
        }
    });
    set(headers, &XFSERVER, &|| down.server_name.clone());
    set(headers, &XREALIP, &|| down.client_ip_header.clone());
}

/// Append the client to X-Forwarded-For, as the forwarding step does after the middlewares.
pub fn append_forwarded_for(headers: &mut HeaderMap, client_ip: &HeaderValue) {
    match headers.entry(&XFF) {
        header::Entry::Occupied(mut o) => {
            let joined = match (o.get().to_str(), client_ip.to_str()) {
                (Ok(prior), Ok(ip)) if !prior.is_empty() => {
                    HeaderValue::from_str(&format!("{prior}, {ip}")).ok()
                }
                _ => None,
            };
            // Every value of a repeated field is replaced by the one joined from the first,
            // as an insert does.
            o.insert(joined.unwrap_or_else(|| client_ip.clone()));
        }
        header::Entry::Vacant(v) => {
            v.insert(client_ip.clone());
        }
    }
}

/// The client address as a header value (computed once per connection).
pub fn ip_header(ip: IpAddr) -> HeaderValue {
    HeaderValue::from_str(&ip.to_canonical().to_string())
        .unwrap_or_else(|_| HeaderValue::from_static("0.0.0.0"))
}

fn port_of(host: &str) -> Option<u16> {
    let (_, port) = host.rsplit_once(':')?;
    if host.starts_with('[') && !host.contains("]:") {
        return None;
    }
    port.parse().ok()
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

/// The outcome of forwarding: the upstream response and the server that produced it.
pub struct Forwarded {
    pub response: Response<ResponseBody>,
    pub server: Arc<Server>,
    pub set_cookie: Option<HeaderValue>,
    /// Attempts made (1 without retries).
    pub attempts: u32,
}

/// Send the (already rewritten) request to the service, with retries as allowed.
pub async fn forward(
    upstream: &Upstream,
    service: &Arc<Service>,
    parts: request::Parts,
    body: Option<UpBody>,
    retry: Option<RetryPolicy>,
) -> Result<Forwarded, ProxyError> {
    let now = Instant::now();
    let lb_service = service.resolve(now).ok_or(ProxyError::NoServer)?;
    let Some(lb) = lb_service.load_balancer() else {
        return Err(ProxyError::NoServer);
    };
    let empty_body = body.is_none();
    let retry = retry.unwrap_or(RetryPolicy {
        attempts: 1,
        initial_interval: Duration::ZERO,
    });
    let attempts = if empty_body { retry.attempts.max(1) } else { 1 };

    let sticky_pick = sticky(lb, &parts.headers, now);
    let host_from_uri = parts
        .uri
        .authority()
        .and_then(|a| HeaderValue::from_str(a.as_str()).ok());
    let mut parts = Some(parts);
    let mut body = body;
    let mut failed: Vec<usize> = Vec::new();
    let mut last_err = ProxyError::NoServer;
    for attempt in 0..attempts {
        if attempt > 0 && !retry.initial_interval.is_zero() {
            let factor = 1u32 << (attempt - 1).min(10);
            tokio::time::sleep(retry.initial_interval.saturating_mul(factor)).await;
        }
        let now = if attempt == 0 { now } else { Instant::now() };
        let sticky = sticky_pick.filter(|_| attempt == 0);
        let picked = sticky.or_else(|| lb.pick(now, &failed).or_else(|| lb.fallback(&failed)));
        let Some(idx) = picked else {
            return Err(last_err);
        };
        let server = &lb.servers[idx];
        // Clone the head only when another attempt may need it.
        let mut head = match parts.take() {
            Some(p) if attempt + 1 < attempts => {
                let copy = p.clone();
                parts = Some(p);
                copy
            }
            Some(p) => p,
            None => return Err(last_err),
        };
        address(
            &mut head,
            server,
            lb.pass_host_header,
            host_from_uri.as_ref(),
        );
        // The body goes with the first attempt; retries only happen when it was empty.
        match upstream.send(server, head, body.take()).await {
            Ok(response) => {
                server.mark_ok();
                return Ok(Forwarded {
                    response,
                    attempts: attempt + 1,
                    server: Arc::clone(server),
                    set_cookie: if sticky_pick == Some(idx) {
                        None
                    } else {
                        cookie_for(lb, idx)
                    },
                });
            }
            Err(e) => last_err = failure(server, e, now, upstream.limits.passive_cooldown),
        }
        failed.push(idx);
    }
    Err(last_err)
}

/// Point the request head's `Host` at `server` (the client sends the rest of the address).
fn address(
    head: &mut request::Parts,
    server: &Server,
    pass_host_header: bool,
    host_from_uri: Option<&HeaderValue>,
) {
    if !pass_host_header {
        (head.headers).insert(header::HOST, server.host_header());
    } else if let Some(v) = host_from_uri {
        // HTTP/2 and absolute-form requests carry the host in the URI, not in Host.
        head.headers.insert(header::HOST, v.clone());
    }
}

/// A failed exchange with `server`: the error to answer with, and the passive mark when the
/// server could not be reached or did not answer in time.
fn failure(server: &Server, e: SendError, now: Instant, cooldown: Duration) -> ProxyError {
    match e {
        SendError::Connect(msg) => {
            server.mark_failed(now, cooldown);
            tracing::debug!(server = %server.url, error = %msg, "connect failed");
            ProxyError::Upstream(msg)
        }
        SendError::Timeout => {
            server.mark_failed(now, cooldown);
            ProxyError::Timeout(server.url.to_string())
        }
        SendError::Other(msg) => {
            tracing::debug!(server = %server.url, error = %msg, "upstream failed");
            ProxyError::Upstream(msg)
        }
    }
}

/// Sticky session: the server named by the request's cookie, when it is available.
fn sticky(lb: &LoadBalancer, headers: &HeaderMap, now: Instant) -> Option<usize> {
    let cfg = lb.sticky.as_ref()?;
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == cfg.name)
        .and_then(|(_, v)| lb.sticky_server(v, now))
}

/// The Set-Cookie header pinning a client to server `idx`, when the balancer is sticky.
fn cookie_for(lb: &LoadBalancer, idx: usize) -> Option<HeaderValue> {
    let cfg = lb.sticky.as_ref()?;
    let mut c = format!(
        "{}={}; Path={}",
        cfg.name,
        lb.servers[idx].sticky_id(),
        if cfg.path.is_empty() { "/" } else { &cfg.path }
    );
    if cfg.max_age != 0 {
        c.push_str(&format!("; Max-Age={}", cfg.max_age));
    }
    if cfg.http_only {
        c.push_str("; HttpOnly");
    }
    if cfg.secure {
        c.push_str("; Secure");
    }
    if !cfg.same_site.is_empty() {
        c.push_str("; SameSite=");
        c.push_str(&cfg.same_site);
    }
    HeaderValue::from_str(&c).ok()
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
    Own(super::h1::Upgraded),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn down(trusted: bool) -> Downstream {
        Downstream {
            client_ip: "192.0.2.1".parse().unwrap(),
            client_ip_header: HeaderValue::from_static("192.0.2.1"),
            scheme: "http",
            trusted,
            server_name: HeaderValue::from_static("gw"),
        }
    }

    #[test]
    fn hop_by_hop_removed() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("close, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert("x-keep", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h, false);
        assert!(!h.contains_key("x-secret"));
        assert!(!h.contains_key(header::CONNECTION));
        assert!(!h.contains_key("keep-alive"));
        assert!(!h.contains_key(header::UPGRADE));
        assert_eq!(h.get(header::TE).unwrap(), "trailers");
        assert!(h.contains_key("x-keep"));
    }

    #[test]
    fn upgrade_kept_when_asked() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert!(upgrade_requested(&h));
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h.get(header::CONNECTION).unwrap(), "upgrade");
        assert_eq!(h.get(header::UPGRADE).unwrap(), "websocket");
    }

    #[test]
    fn forwarded_untrusted_replaced() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("6.6.6.6"));
        h.insert("x-real-ip", HeaderValue::from_static("6.6.6.6"));
        h.insert("x-forwarded-uri", HeaderValue::from_static("/admin"));
        h.insert("x-forwarded-tls-client-cert", HeaderValue::from_static("x"));
        let host = HeaderValue::from_static("app.lan:8080");
        set_forwarded(&mut h, &host, &down(false), false);
        assert!(!h.contains_key("x-forwarded-uri"));
        assert!(!h.contains_key("x-forwarded-tls-client-cert"));
        append_forwarded_for(&mut h, &down(false).client_ip_header);
        assert_eq!(h.get("x-forwarded-for").unwrap(), "192.0.2.1");
        assert_eq!(h.get("x-real-ip").unwrap(), "192.0.2.1");
        assert_eq!(h.get("x-forwarded-host").unwrap(), "app.lan:8080");
        assert_eq!(h.get("x-forwarded-port").unwrap(), "8080");
        assert_eq!(h.get("x-forwarded-proto").unwrap(), "http");
    }

    #[test]
    fn forwarded_trusted_appended() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("10.1.1.1"));
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        set_forwarded(
            &mut h,
            &HeaderValue::from_static("app.lan"),
            &down(true),
            true,
        );
        append_forwarded_for(&mut h, &down(true).client_ip_header);
        assert_eq!(h.get("x-forwarded-for").unwrap(), "10.1.1.1, 192.0.2.1");
        assert_eq!(h.get("x-forwarded-proto").unwrap(), "https");
        assert_eq!(h.get("x-forwarded-port").unwrap(), "80");
    }
}
