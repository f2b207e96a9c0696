//! The upstream side of the proxy: rewriting the request for a server (hop-by-hop headers,
//! X-Forwarded-*, Host), picking servers, sending through a bounded keep-alive pool, retrying what
//! is safe to retry, marking failing servers, and splicing upgraded (WebSocket) connections.
//!
//! It must never buffer a body: requests and responses stream. A request is retried only when it
//! failed before any response byte *and* its body is empty, so nothing is ever replayed half-sent.

mod headers;
mod timed;
mod upstream;

use std::time::{Duration, Instant};

use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, request};

use super::error::ProxyError;
use crate::runtime::balance::{LoadBalancer, Server, Service};
pub use headers::{
    Deferred, Downstream, append_forwarded_for, drop_connection_named, ip_header, set_forwarded,
    strip_hop_by_hop, strip_response_hop_by_hop, upgrade_requested,
};
pub use timed::ReadBy;
use upstream::SendError;
pub use upstream::{
    ResponseBody, SpliceIo, UpBody, Upgrade, Upstream, UpstreamLimits, UpstreamUpgrade,
};
pub(super) use upstream::{error_chain, io_kind};

/// How many attempts and how long to wait before the first retry.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub initial_interval: Duration,
}
/// The outcome of forwarding: the upstream response and the server that produced it.
pub struct Forwarded<'s> {
    pub response: Response<ResponseBody>,
    pub server: &'s Server,
    pub set_cookie: Option<HeaderValue>,
    /// Attempts made (1 without retries).
    pub attempts: u32,
}

/// How a request is sent: the retries allowed, and whether the answer's fields may be passed
/// on as they came (nothing on the way back reads them; see [`super::h1::Target`]).
#[derive(Debug, Default)]
pub struct Sending<'a> {
    pub retry: Option<RetryPolicy>,
    pub pass_fields: bool,
    /// The request's forwarded fields, when they are not in its map yet (taken when they are
    /// put there).
    pub forwarded: Option<&'a mut Option<Deferred>>,
}

/// Send the (already rewritten) request to the service, with retries as allowed. The head is
/// borrowed: boma's own client only reads it, and hyper-util's takes it (a copy when another
/// attempt may follow), so that the head is not moved from future to future on its way.
pub async fn forward<'s>(
    upstream: &Upstream,
    service: &'s Service,
    parts: &mut request::Parts,
    body: Option<UpBody>,
    how: Sending<'_>,
) -> Result<Forwarded<'s>, ProxyError> {
    let now = Instant::now();
    let lb_service = service.resolve(now).ok_or(ProxyError::NoServer)?;
    let Some(lb) = lb_service.load_balancer() else {
        return Err(ProxyError::NoServer);
    };
    let empty_body = body.is_none();
    let retry = how.retry.unwrap_or(RetryPolicy {
        attempts: 1,
        initial_interval: Duration::ZERO,
    });
    let attempts = if empty_body { retry.attempts.max(1) } else { 1 };

    let sticky_pick = sticky(lb, &parts.headers, now);
    let host_from_uri = parts
        .uri
        .authority()
        .and_then(|a| HeaderValue::from_str(a.as_str()).ok());
    let mut body = body;
    let mut forwarded = how.forwarded;
    let mut failed: Vec<usize> = Vec::new();
    let mut last_err = ProxyError::NoServer;
    for attempt in 0..attempts {
        if attempt > 0 && !retry.initial_interval.is_zero() {
            let factor = 1u32 << (attempt - 1).min(10);
            // Boxed: a timer in the future's state would be carried by every request.
            Box::pin(tokio::time::sleep(
                retry.initial_interval.saturating_mul(factor),
            ))
            .await;
        }
        let now = if attempt == 0 { now } else { Instant::now() };
        let sticky = sticky_pick.filter(|_| attempt == 0);
        let picked = sticky.or_else(|| lb.pick(now, &failed).or_else(|| lb.fallback(&failed)));
        let Some(idx) = picked else {
            return Err(last_err);
        };
        let server = &lb.servers[idx];
        address(parts, server, lb.pass_host_header, host_from_uri.as_ref());
        // The body goes with the first attempt; retries only happen when it was empty.
        let again = attempt + 1 < attempts;
        // A sticky cookie is added to the answer's fields: they are not passed then.
        let pass = how.pass_fields && lb.sticky.is_none();
        let sent = upstream.send(
            server,
            parts,
            body.take(),
            (again, pass),
            forwarded.as_deref_mut(),
        );
        match sent.await {
            Ok(response) => {
                server.mark_ok();
                return Ok(Forwarded {
                    response,
                    attempts: attempt + 1,
                    server,
                    set_cookie: if sticky_pick == Some(idx) {
                        None
                    } else {
                        cookie_for(lb, idx)
                    },
                });
            }
            Err(e) => last_err = failure(server, e, now, upstream.passive_cooldown()),
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
