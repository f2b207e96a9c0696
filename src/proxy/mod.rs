//! The reverse proxy. A request goes through these phases, in this order, and nothing else:
//!
//! 1. **accept** (`entrypoint`): connection limit, HTTP/1.1 (boma's own server for bodyless
//!    requests, hyper for the rest) or h2c, header-read and idle timeouts; hyper answers
//!    malformed requests with 400 and oversized headers with 431.
//! 2. **redirect**: an entrypoint with `http.redirections` answers every request with a
//!    redirect to its target entrypoint.
//! 3. **route**: the canonical host picks candidate routes from the snapshot's host index, then
//!    the first rule (by priority) that matches wins; none → 404.
//! 4. **middlewares, request side**: in router order; one may rewrite the request or answer it
//!    (redirect, 401, 403, 429...).
//! 5. **upstream request** (`forward`): hop-by-hop headers dropped, X-Forwarded-For appended
//!    (the other forwarded fields were set with the route, before the middlewares; for a route
//!    without middlewares boma's client may write them all with the head), a server picked by
//!    the balancer, the request streamed to it; retried only when safe.
//! 6. **response** (`answer`): hop-by-hop headers dropped (for an answer whose fields are passed
//!    on as lines, when its head is parsed), then back through the middlewares
//!    that ran, last first (errors pages, buffered answers and breaker records included), the
//!    body streamed back; a 101 joins both upgraded connections. Every answer takes this way
//!    back, the proxy's own errors included, as in Traefik.
//! 7. **log**: the access-log line is written when the body has been sent.
//!
//! Errors are classified in `error` and turned into status codes there, in one place. A
//! request takes the snapshot once, as its worker's own reference (`held`), and borrows its
//! route, service and server from it; no configuration work happens here.

pub mod accesslog;
mod answer;
pub mod body;
pub mod connect;
pub mod entrypoint;
pub mod error;
pub mod forward;
pub mod h1;
pub mod health;
pub mod held;
pub mod sanitize;
pub mod setup;
pub mod upload;
pub mod worker;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use arc_swap::ArcSwap;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode, Version, request};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::dynamic::{self, Snapshot};
use crate::rule;
use crate::runtime::balance::{Internal, Service};
use crate::runtime::middlewares::{self, Flow, Middleware};
use accesslog::{AccessLog, Record};
use body::{Body, Finisher, Observe, Tracked};
use error::ProxyError;
use forward::{Downstream, ResponseBody, RetryPolicy, Upstream};

/// Static facts about one entrypoint, fixed at start-up.
#[derive(Debug)]
pub struct EntryPoint {
    pub name: String,
    /// `http.tls` is set: every router here is served over TLS (plain HTTP reaches only the
    /// entrypoint's redirection, if any, or a 404).
    pub tls: bool,
    /// Redirect every request to this scheme and port (entrypoint redirections).
    pub redirect: Option<Arc<Middleware>>,
    /// Networks whose X-Forwarded-* headers are trusted; `trust_all` for `insecure`.
    pub trusted: crate::ipnet::IpSet,
    pub trust_all: bool,
    pub idle_timeout: std::time::Duration,
    /// `writeTimeout`: the whole response must be sent within this time of the request's
    /// arrival (None: no limit, Traefik's default).
    pub write_timeout: Option<std::time::Duration>,
    /// `readTimeout`: a request's body must be read whole within this time of its head (None:
    /// no limit). Not for `api@internal`'s update upload, which has bounds of its own.
    pub read_timeout: Option<std::time::Duration>,
    /// Open connections by source address, shared by the workers (`max_connections_per_ip`).
    pub per_source: entrypoint::PerSource,
    /// Counters the API shows.
    pub stats: Arc<crate::admin::ConnStats>,
}

/// Facts about one client connection, computed once when it is accepted.
#[derive(Debug)]
pub struct Conn {
    pub peer: SocketAddr,
    /// `https` on a TLS connection (its routes are the entrypoint's TLS ones), else `http`.
    pub scheme: &'static str,
    /// On a TLS connection, the option set its handshake got (a request for a host whose set
    /// differs is answered 421, as Traefik's SNI check does).
    pub tls_options: Option<Box<str>>,
    /// The peer address as a header value (X-Real-Ip, X-Forwarded-For).
    pub ip_header: HeaderValue,
    /// A protocol switch (101) answered on this connection: the entrypoint's connection task
    /// splices both sides once hyper hands the socket over, so the upgraded connection keeps
    /// its connection permit and is closed on drain.
    pub upgrade: std::sync::Mutex<Option<forward::Upgrade>>,
}

impl Conn {
    /// `tls`: the option set of the connection's handshake, `None` for plain HTTP.
    pub fn new(peer: SocketAddr, tls: Option<Box<str>>) -> Self {
        Conn {
            peer,
            scheme: if tls.is_some() { "https" } else { "http" },
            tls_options: tls,
            ip_header: forward::ip_header(peer.ip()),
            upgrade: std::sync::Mutex::new(None),
        }
    }

    /// The upgrade answered on this connection, if any (taken once).
    pub fn take_upgrade(&self) -> Option<forward::Upgrade> {
        self.upgrade
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }
}

/// What every entrypoint shares: the current snapshot, the upstream pools, the access log.
pub struct Proxy {
    pub snapshot: Arc<ArcSwap<Snapshot>>,
    /// This worker's reference to the current snapshot, which requests borrow routes from.
    pub held: held::Held,
    pub upstream: Upstream,
    pub access_log: Option<AccessLog>,
    pub server_name: HeaderValue,
    pub admin: crate::admin::Info,
    /// The request metrics and this worker's shard of them, with `[metrics.prometheus]`.
    pub metrics: Option<(Arc<crate::metrics::Registry>, usize)>,
}

/// Phase 3: the route of `snapshot` for this request, if any.
fn route<'s>(
    snapshot: &'s Snapshot,
    ep: &EntryPoint,
    conn: &Conn,
    parts: &request::Parts,
    raw_host: &str,
) -> Option<&'s Arc<dynamic::table::Route>> {
    let host = rule::canonical_host(raw_host);
    let table = snapshot.table(&ep.name, conn.scheme == "https")?;
    table.find(&rule::Request {
        host: &host,
        path: parts.uri.path(),
        query: parts.uri.query(),
        method: &parts.method,
        headers: &parts.headers,
        client_ip: conn.peer.ip().to_canonical(),
    })
}

fn proto_name(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

fn header_str(h: &http::HeaderMap, name: header::HeaderName) -> String {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

impl Proxy {
    /// Answer one request hyper read. Never fails: every error becomes a response.
    pub async fn handle(
        &self,
        ep: &Arc<EntryPoint>,
        conn: &Conn,
        req: Request<Incoming>,
    ) -> Response<Body> {
        let (parts, body) = req.into_parts();
        let body =
            (!http_body::Body::is_end_stream(&body)).then(|| body.map_err(Into::into).boxed());
        self.handle_parts(ep, conn, parts, body, false).await
    }

    /// Answer one request, given as its head and its body (`None`: none). Never fails: every
    /// error becomes a response. `pass_fields`: the caller writes an answer's fields passed on
    /// as lines (boma's own HTTP/1.1 server does; see [`Body::take_passed`]).
    pub async fn handle_parts(
        &self,
        ep: &Arc<EntryPoint>,
        conn: &Conn,
        mut parts: request::Parts,
        body: Option<forward::UpBody>,
        pass_fields: bool,
    ) -> Response<Body> {
        // The route, its service and servers are borrowed from this worker's reference to the
        // snapshot, which the request holds until it is answered.
        let view = self.held.current();
        let mut req = match self.prepare(ep, conn, &view, &mut parts, pass_fields) {
            Ok(req) => req,
            Err(answered) => return answered,
        };
        // Phases 4 to 6.
        let exchange = Exchange {
            conn,
            route: req.route,
            pass_fields: req.pass_fields,
            forwarded: &mut req.forwarded,
            upgrade: req.upgrade,
            read_timeout: ep.read_timeout,
        };
        let (resp, depth) = self
            .exchange(exchange, &mut parts, body, &mut req.ctx, &mut req.record)
            .await;
        // (No future made for a walk through no middleware: it would be moved for nothing.)
        let resp = match depth {
            0 => resp,
            _ => self.walk_back(req.route, depth, &mut req.ctx, resp).await,
        };
        if let (Some(r), Some((url, resends))) = (req.record.as_mut(), req.ctx.resent.take()) {
            r.server_url = url;
            // The first send counts once, even when it failed before any answer.
            r.attempts = r.attempts.max(1) + resends;
        }
        self.finish(ep, resp, req.ctx, (req.record, req.obs))
    }

    /// Phases 2 and 3, and the forwarded fields: the request's route and what answering it
    /// keeps, or the answer when it ends here (a redirection, a 421, a 404). Not async: what it
    /// works with is not carried in the request's future. With `pass_fields` (see
    /// [`Proxy::handle_parts`]) and a route whose request nothing reads on its way, the
    /// forwarded fields are kept beside it ([`forward::Deferred`]).
    // The answer made here is as large as the request's state: both are moved once.
    #[allow(clippy::result_large_err)]
    fn prepare<'s>(
        &self,
        ep: &Arc<EntryPoint>,
        conn: &Conn,
        snapshot: &'s Snapshot,
        parts: &mut request::Parts,
        pass_fields: bool,
    ) -> Result<Prepared<'s>, Response<Body>> {
        let client_ip: IpAddr = conn.peer.ip().to_canonical();
        let started = Instant::now();
        // h2 and absolute-form requests carry the authority in the URI, others in Host (kept
        // as the header's value: X-Forwarded-Host shares it, nothing is copied).
        let host_value = match parts.uri.authority() {
            Some(a) => HeaderValue::from_str(a.as_str()).ok(),
            None => (parts.headers.get(header::HOST))
                .filter(|v| v.to_str().is_ok())
                .cloned(),
        };
        let host_value = host_value.unwrap_or_else(|| HeaderValue::from_static(""));
        let raw_host = host_value.to_str().unwrap_or("");
        let mut record = self.start_record(ep, client_ip, started, parts);
        let mut obs = self.start_observe(ep, parts, started);
        let mut ctx = middlewares::Ctx::new(client_ip, conn.scheme, started);
        ctx.head = parts.method == http::Method::HEAD;

        // Phase 2: entrypoint redirection.
        if let Some(redirect) = &ep.redirect
            && let Flow::Respond(resp) = redirect.on_request(parts, &mut ctx)
        {
            return Err(self.finish(ep, resp.map(ResponseBody::local), ctx, (record, obs)));
        }

        if self.misdirected(ep, conn, raw_host) {
            let resp = ProxyError::Misdirected.response().map(ResponseBody::local);
            return Err(self.finish(ep, resp, ctx, (record, obs)));
        }

        // Phase 3: route, on the sanitized path (the backend sees the same path) and without
        // the fields the client's Connection names (as Traefik's entrypoint removes them).
        sanitize::clean_uri(&mut parts.uri);
        forward::drop_connection_named(&mut parts.headers);
        let Some(route) = route(snapshot, ep, conn, parts, raw_host) else {
            let resp = ProxyError::NoRoute.response().map(ResponseBody::local);
            return Err(self.finish(ep, resp, ctx, (record, obs)));
        };
        if let Some(r) = record.as_mut() {
            r.router = route.name.clone();
        }
        if let Some(o) = obs.as_mut() {
            o.route = Some(Arc::clone(route));
        }
        // Forwarded headers are the entrypoint's business: set before the router's middlewares,
        // which may override them (customRequestHeaders).
        let upgrade = forward::upgrade_requested(&parts.headers);
        let down = Downstream {
            client_ip,
            client_ip_header: conn.ip_header.clone(),
            scheme: conn.scheme,
            trusted: ep.trust_all || ep.trusted.contains(client_ip),
            server_name: self.server_name.clone(),
        };
        // A middleware may read or change the fields either way (and an internal service reads
        // the request's): only a route without them takes the shortcuts.
        let pass_fields = pass_fields && route.middlewares.is_empty();
        let internal = matches!(*route.service, Service::Internal(_));
        let forwarded = match pass_fields && !internal {
            true => forward::Deferred::of(&parts.headers, &host_value, &down, upgrade),
            false => None,
        };
        if forwarded.is_none() {
            forward::set_forwarded(&mut parts.headers, &host_value, &down, upgrade);
        }
        Ok(Prepared {
            route,
            pass_fields,
            forwarded,
            upgrade,
            record,
            obs,
            ctx,
        })
    }

    /// Phases 4 and 5: the middlewares' request side, then the service (internal or upstream).
    /// The answer, and how many of the route's middlewares it goes back through.
    async fn exchange(
        &self,
        x: Exchange<'_>,
        parts: &mut request::Parts,
        mut body: Option<forward::UpBody>,
        ctx: &mut middlewares::Ctx,
        record: &mut Option<Box<Record>>,
    ) -> (Response<ResponseBody>, usize) {
        let route = x.route;
        let internal = matches!(*route.service, Service::Internal(_));
        // Read whole in time, on its way to a middleware or a server (an internal service's
        // upload bounds its own reading).
        if !internal
            && let Some(limit) = x.read_timeout
            && let Some(b) = body.take()
        {
            body = Some(forward::ReadBy::new(b, limit).boxed());
        }
        if (internal || !route.middlewares.is_empty())
            && let Some(answered) = self.request_side(route, parts, ctx, &mut body).await
        {
            return answered;
        }
        let depth = route.middlewares.len();
        let on_upgrade = if x.upgrade {
            parts.extensions.remove::<hyper::upgrade::OnUpgrade>()
        } else {
            None
        };
        forward::strip_hop_by_hop(&mut parts.headers, on_upgrade.is_some());
        if !ctx.drop_x_forwarded_for && x.forwarded.is_none() {
            forward::append_forwarded_for(&mut parts.headers, &x.conn.ip_header);
        }
        let retry = route.middlewares.iter().find_map(|m| {
            m.retry().map(|(attempts, initial_interval)| RetryPolicy {
                attempts,
                initial_interval,
            })
        });
        let how = forward::Sending {
            retry,
            pass_fields: x.pass_fields,
            forwarded: Some(x.forwarded),
        };
        if (route.middlewares.iter()).any(|m| m.buffering().is_some_and(|b| b.retries())) {
            ctx.resend = Some(Box::new(parts.clone()));
        }
        // The Host sent upstream is the request's as the middlewares left it.
        let sent = forward::forward(&self.upstream, &route.service, parts, body, how).await;
        // Sent: the map serves the next head this thread parses.
        h1::spare::give(std::mem::take(&mut parts.headers));
        let mut fwd = match sent {
            Ok(f) => f,
            Err(e) => {
                tracing::debug!(router = %route.name, error = %e, "proxy error");
                return (e.response().map(ResponseBody::local), depth);
            }
        };
        if let Some(r) = record.as_mut() {
            r.server_url = fwd.server.url.to_string();
            r.attempts = fwd.attempts;
        }
        if let Some(cookie) = fwd.set_cookie {
            fwd.response
                .headers_mut()
                .append(header::SET_COOKIE, cookie);
        }
        // Phase 6 starts: a 101 hands both connections to the entrypoint to splice.
        let switching = fwd.response.status() == StatusCode::SWITCHING_PROTOCOLS;
        match (switching, on_upgrade) {
            (true, Some(client)) => {
                if let Some(upstream) = forward::UpstreamUpgrade::of(&mut fwd.response) {
                    let upgrade = forward::Upgrade { client, upstream };
                    *x.conn.upgrade.lock().unwrap_or_else(|e| e.into_inner()) = Some(upgrade);
                }
            }
            _ => forward::strip_response_hop_by_hop(fwd.response.headers_mut()),
        }
        (fwd.response, depth)
    }

    /// A request on a TLS connection for a host whose TLS options are not the ones the
    /// connection was made with (another name on a shared certificate, or no SNI): it would
    /// skip them, so it is answered 421, as Traefik's SNI check does.
    fn misdirected(&self, ep: &EntryPoint, conn: &Conn, raw_host: &str) -> bool {
        let Some(made_with) = &conn.tls_options else {
            return false;
        };
        let host = rule::canonical_host(raw_host);
        self.snapshot.load().tls.options_for(&ep.name, Some(&host)) != &**made_with
    }

    /// The access-log record of a request, when there is an access log.
    fn start_record(
        &self,
        ep: &EntryPoint,
        client: IpAddr,
        started: Instant,
        parts: &request::Parts,
    ) -> Option<Box<Record>> {
        let log = self.access_log.as_ref()?;
        Some(Box::new(Record {
            client,
            method: parts.method.to_string(),
            path: (parts.uri.path_and_query())
                .map_or("/", |p| p.as_str())
                .to_string(),
            proto: proto_name(parts.version),
            status: 0,
            size: 0,
            referer: header_str(&parts.headers, header::REFERER),
            user_agent: header_str(&parts.headers, header::USER_AGENT),
            router: String::new(),
            server_url: String::new(),
            started,
            started_wall: SystemTime::now(),
            entrypoint: ep.name.clone(),
            attempts: 0,
            headers: log.capture_headers(&parts.headers),
        }))
    }

    /// The request's metrics, recorded when its answer has been sent (with
    /// `[metrics.prometheus]`).
    fn start_observe(
        &self,
        ep: &Arc<EntryPoint>,
        parts: &request::Parts,
        started: Instant,
    ) -> Option<Observe> {
        let (registry, shard) = self.metrics.as_ref()?;
        let h = |name| parts.headers.get(name).map(HeaderValue::as_bytes);
        Some(Observe {
            registry: Arc::clone(registry),
            shard: *shard,
            ep: Arc::clone(ep),
            route: None,
            method: crate::metrics::method_index(parts.method.as_str()),
            protocol: crate::metrics::Protocol::of(
                h(header::UPGRADE),
                h(header::ACCEPT),
                h(header::CONTENT_TYPE),
            ),
            code: 0,
            started,
        })
    }

    /// Phase 4: the route's middlewares in order, then an internal service. `Some`: the answer
    /// and how many middlewares it goes back through (those that ran before it).
    async fn request_side(
        &self,
        route: &dynamic::table::Route,
        parts: &mut request::Parts,
        ctx: &mut middlewares::Ctx,
        body: &mut Option<forward::UpBody>,
    ) -> Option<(Response<ResponseBody>, usize)> {
        for (i, mw) in route.middlewares.iter().enumerate() {
            let mut flow = mw.on_request(parts, ctx);
            if let Flow::Verify(check) = flow {
                // bcrypt: on the blocking pool, never on this worker's event loop. (This and
                // the other rare waits below are boxed: the common request's future stays
                // small, and it is moved whole from caller to callee.)
                flow = mw.verified(Box::pin(check.run()).await, parts, ctx);
            }
            if let Flow::Respond(resp) = flow {
                return Some((resp.map(ResponseBody::local), i));
            }
            if let Some(b) = mw.buffering()
                && let Err(resp) = Box::pin(answer::buffer_request(b, parts, ctx, body)).await
            {
                return Some((resp, i));
            }
        }
        if !ctx.delay.is_zero() {
            Box::pin(tokio::time::sleep(ctx.delay)).await;
        }
        let Service::Internal(which) = &*route.service else {
            return None;
        };
        let resp = match body.take() {
            // An empty upload too: the updater says what is wrong with it.
            b if *which == Internal::Api && upload::is_upload(parts) => {
                let b = b.unwrap_or_else(|| {
                    let empty = http_body_util::Empty::new().map_err(|never| match never {});
                    empty.boxed()
                });
                let user = ctx.user.as_deref();
                Box::pin(upload::receive(&self.admin.update, route, user, parts, b)).await
            }
            _ => {
                let snapshot = self.snapshot.load();
                let path = parts.uri.path();
                crate::admin::respond(*which, &parts.method, path, &snapshot, &self.admin)
            }
        };
        Some((resp.map(ResponseBody::local), route.middlewares.len()))
    }

    /// Phase 7: the answer streamed back, with the access log written and the metrics
    /// recorded when it ends.
    fn finish(
        &self,
        ep: &EntryPoint,
        resp: Response<ResponseBody>,
        mut ctx: middlewares::Ctx,
        (mut record, obs): (Option<Box<Record>>, Option<Observe>),
    ) -> Response<Body> {
        let (mut rparts, rbody) = resp.into_parts();
        if let Some(r) = record.as_mut() {
            r.status = rparts.status.as_u16();
        }
        let fin = Finisher {
            guards: std::mem::take(&mut ctx.guards),
            log: self.access_log.clone().zip(record),
            metrics: obs.map(|o| o.answered(rparts.status)),
            bytes: 0,
        };
        // The write timeout counts from the request's arrival (`ctx.now`).
        let deadline = (ep.write_timeout).map(|t| tokio::time::Instant::from_std(ctx.now) + t);
        let body = match rparts.extensions.remove::<middlewares::compress::Plan>() {
            None => Body::Tracked(Tracked::new(rbody, fin, deadline)),
            Some(plan) => {
                let encoded = body::compressed(&mut rparts.headers, rbody, plan);
                Body::Boxed(Tracked::new(encoded, fin, deadline).boxed())
            }
        };
        Response::from_parts(rparts, body)
    }
}

/// A routed request, as [`Proxy::prepare`] leaves it for phases 4 to 7.
struct Prepared<'s> {
    route: &'s Arc<dynamic::table::Route>,
    /// The answer's fields may be passed on as they came (nothing on the way reads them).
    pass_fields: bool,
    /// The forwarded fields, when they are not in the request's map yet.
    forwarded: Option<forward::Deferred>,
    /// The client asked for a protocol switch.
    upgrade: bool,
    record: Option<Box<Record>>,
    obs: Option<Observe>,
    ctx: middlewares::Ctx,
}

/// What phases 4 to 6 need besides the request.
struct Exchange<'a> {
    conn: &'a Conn,
    route: &'a dynamic::table::Route,
    /// The client asked for a protocol switch.
    upgrade: bool,
    /// The answer's fields may be passed on as they came.
    pass_fields: bool,
    /// The forwarded fields, X-Forwarded-For included, when not in the request's map (kept in
    /// the request's state and lent: they are not moved from future to future).
    forwarded: &'a mut Option<forward::Deferred>,
    /// The entrypoint's `readTimeout`, for a body.
    read_timeout: Option<std::time::Duration>,
}
