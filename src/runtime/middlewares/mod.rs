//! HTTP middlewares of the reverse proxy, with Traefik v3's configuration names and behaviour.
//!
//! This module turns one `[http.middlewares.NAME]` table ([`MiddlewareConfig`]) into a
//! [`Middleware`] once, at assemble time ([`compile`]): regexes, CIDRs, password hashes and
//! header names are parsed there, so the per-request work is a few comparisons and header
//! writes. It must not buffer bodies, spawn tasks, read the clock, or panic on any input; it
//! does no I/O per request (only `basicAuth.usersFile` is read, by `compile`).
//!
//! # Phases (what the proxy core does with a chain `[m0, m1, .., mn]`)
//! 1. **Request**: build one [`Ctx`] per request ([`Ctx::new`]: client IP, entrypoint scheme,
//!    `Instant::now()`), then call `mi.on_request(&mut parts, &mut ctx)` in order. A middleware
//!    rewrites the request head in place and returns [`Flow::Continue`], or answers with
//!    [`Flow::Respond`] (small body, e.g. 401/403/429/3xx/CORS preflight): the core then stops
//!    the chain and sends that response **through `on_response` of the middlewares that already
//!    ran (`m(i-1)` .. `m0`)**, as Traefik's wrapping handlers do.
//! 2. **Before forwarding**: if `ctx.delay` is non-zero (rateLimit traffic shaping, at most
//!    500 ms), sleep that long; if `ctx.drop_x_forwarded_for` is set, neither forward nor add
//!    `X-Forwarded-For` (Traefik's `customRequestHeaders."X-Forwarded-For" = ""`). Take the
//!    upstream `Host` from the request as the middlewares left it (URI authority, else the
//!    `host` header, like Go's `req.Host`): `customRequestHeaders.Host` rewrites both.
//! 3. **Retry**: a middleware with `retry() == Some((attempts, initial))` asks the core to
//!    re-send the request (re-running the middlewares after it) while it could not be delivered
//!    (connection failure; Traefik stops retrying once the request headers reached the
//!    upstream, and on its own 503 "no server"), up to `attempts` tries in all, waiting an
//!    exponential backoff from `initial`, capped at twice it (zero: no wait).
//! 4. **Response**: call `on_response(&ctx, &mut resp_parts)` in reverse order (`mn` .. `m0`).
//! 5. **End**: keep `ctx` (its [`Guard`]s release inFlightReq slots) alive until the response
//!    body is finished or the request is abandoned; dropping it releases them.
//!
//! `chain` compiles to [`Compiled::Chain`] (names to expand, cycles to detect: the assembler's
//! job). `compress` marks the responses to encode ([`compress::Plan`]); the core encodes the
//! body as it streams ([`compress::GzipBody`]).
//!
//! Three middlewares act on whole answers, so the core runs their response side itself (it
//! is asynchronous): `errors` ([`Middleware::errors`]: fetch a page from another service for a
//! caught status), `buffering` ([`Middleware::buffering`]: read the request whole before the
//! next middleware, the response whole on the way back, and maybe send again) and
//! `circuitBreaker`, whose response side records the status ([`Middleware::on_status`]).
//!
//! `forwardAuth`, `digestAuth`, `grpcWeb`, `contentType`, `passTLSClientCert` and `plugin`
//! parse loosely and compile to [`MiddlewareError::Unsupported`], which the assembler records
//! as a problem for routers using them.

mod auth;
mod buffered;
pub mod buffering;
mod circuit;
pub mod compress;
mod errors;
mod expr;
mod headers;
mod htpasswd;
mod ip;
mod limit;
mod path;
mod redirect;
mod util;

#[cfg(test)]
mod tests;

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Deserialize;
use serde::de::IgnoredAny;

pub use auth::{BasicAuthConfig, Verified, Verify};
pub use buffering::{Buffered, BufferingConfig};
pub use circuit::CircuitBreakerConfig;
pub use compress::CompressConfig;
pub use errors::{Errors, ErrorsConfig};
pub use headers::HeadersConfig;
pub use ip::{IpAllowListConfig, IpStrategyConfig, SourceCriterionConfig};
pub use limit::{Guard, InFlightReqConfig, MAX_SOURCES, RateLimitConfig, RetryConfig};
pub use path::{
    AddPrefixConfig, ReplacePathConfig, ReplacePathRegexConfig, StripPrefixConfig,
    StripPrefixRegexConfig,
};
pub use redirect::{RedirectRegexConfig, RedirectSchemeConfig};
pub use util::{GoDuration, status_text};

/// Serde shape of one `[http.middlewares.NAME]` table: exactly one field may be set.
/// Field names are Traefik's (camelCase); values given as strings (labels) are accepted where
/// Traefik expects numbers, booleans, durations or lists (comma-separated).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MiddlewareConfig {
    #[serde(rename = "addPrefix")]
    pub add_prefix: Option<AddPrefixConfig>,
    #[serde(rename = "stripPrefix")]
    pub strip_prefix: Option<StripPrefixConfig>,
    #[serde(rename = "stripPrefixRegex")]
    pub strip_prefix_regex: Option<StripPrefixRegexConfig>,
    #[serde(rename = "replacePath")]
    pub replace_path: Option<ReplacePathConfig>,
    #[serde(rename = "replacePathRegex")]
    pub replace_path_regex: Option<ReplacePathRegexConfig>,
    #[serde(rename = "chain")]
    pub chain: Option<ChainConfig>,
    #[serde(rename = "ipAllowList")]
    pub ip_allow_list: Option<IpAllowListConfig>,
    /// Deprecated Traefik name of `ipAllowList`; same shape and behaviour.
    #[serde(rename = "ipWhiteList")]
    pub ip_white_list: Option<IpAllowListConfig>,
    #[serde(rename = "headers")]
    pub headers: Option<HeadersConfig>,
    #[serde(rename = "rateLimit")]
    pub rate_limit: Option<RateLimitConfig>,
    #[serde(rename = "redirectRegex")]
    pub redirect_regex: Option<RedirectRegexConfig>,
    #[serde(rename = "redirectScheme")]
    pub redirect_scheme: Option<RedirectSchemeConfig>,
    #[serde(rename = "basicAuth")]
    pub basic_auth: Option<BasicAuthConfig>,
    #[serde(rename = "inFlightReq")]
    pub in_flight_req: Option<InFlightReqConfig>,
    #[serde(rename = "retry")]
    pub retry: Option<RetryConfig>,
    #[serde(rename = "errors")]
    pub errors: Option<ErrorsConfig>,
    #[serde(rename = "buffering")]
    pub buffering: Option<BufferingConfig>,
    #[serde(rename = "circuitBreaker")]
    pub circuit_breaker: Option<CircuitBreakerConfig>,
    // Accepted, not supported: `compile` reports them.
    #[serde(rename = "digestAuth")]
    pub digest_auth: Option<IgnoredAny>,
    #[serde(rename = "forwardAuth")]
    pub forward_auth: Option<IgnoredAny>,
    #[serde(rename = "compress")]
    pub compress: Option<CompressConfig>,
    #[serde(rename = "passTLSClientCert")]
    pub pass_tls_client_cert: Option<IgnoredAny>,
    #[serde(rename = "contentType")]
    pub content_type: Option<IgnoredAny>,
    #[serde(rename = "grpcWeb")]
    pub grpc_web: Option<IgnoredAny>,
    #[serde(rename = "plugin")]
    pub plugin: Option<IgnoredAny>,
}

/// `chain`: other middlewares applied in order, by (possibly qualified) name.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainConfig {
    #[serde(default, deserialize_with = "util::str_list")]
    pub middlewares: Vec<String>,
}

/// Why a middleware table could not be compiled. Each names the Traefik type it came from.
#[derive(Debug, thiserror::Error)]
pub enum MiddlewareError {
    #[error("middleware has no type (expected one of addPrefix, stripPrefix, headers, ...)")]
    Empty,
    #[error("middleware sets several types ({0}); exactly one is allowed")]
    Several(String),
    #[error("middleware type {0} is not supported by boma")]
    Unsupported(&'static str),
    #[error("{kind}: {msg}")]
    Invalid { kind: &'static str, msg: String },
    #[error("{kind}: invalid regular expression {pattern:?}: {why}")]
    Regex {
        kind: &'static str,
        pattern: String,
        why: String,
    },
    #[error("{kind}: invalid IP or CIDR {value:?}")]
    Cidr { kind: &'static str, value: String },
    #[error("{kind}: option {option} is deprecated and not supported; use {replacement} instead")]
    Deprecated {
        kind: &'static str,
        option: &'static str,
        replacement: &'static str,
    },
    #[error("basicAuth: cannot read usersFile {path:?}: {source}")]
    UsersFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl MiddlewareError {
    pub(crate) fn invalid(kind: &'static str, msg: impl Into<String>) -> Self {
        MiddlewareError::Invalid {
            kind,
            msg: msg.into(),
        }
    }
}

/// Result of [`compile`].
#[derive(Debug)]
pub enum Compiled {
    One(Middleware),
    /// A `chain`: the names to expand, in order (the assembler resolves and checks them).
    Chain(Vec<String>),
}

/// What a middleware returns from [`Middleware::on_request`].
#[derive(Debug)]
pub enum Flow {
    /// Go on with the (possibly rewritten) request.
    Continue,
    /// Answer now with this small response; the rest of the chain and the upstream are skipped.
    Respond(http::Response<Bytes>),
    /// A password check too slow for the event loop: await [`Verify::run`] and hand the
    /// outcome to [`Middleware::verified`], which says how to go on.
    Verify(Box<Verify>),
}

/// Per-request state shared by the middlewares of one chain. Built by the core, kept until the
/// response ends (it owns the [`Guard`]s), passed back to [`Middleware::on_response`].
#[derive(Debug)]
pub struct Ctx {
    /// Peer address (or the client address resolved by the entrypoint's trusted forwarded
    /// headers), used by `ipAllowList`/`rateLimit`/`inFlightReq` without `ipStrategy` depth/pool.
    pub client_ip: IpAddr,
    /// `"http"` or `"https"`: the entrypoint's scheme (TLS or not).
    pub scheme: &'static str,
    /// Time of arrival; the only clock middlewares see (rateLimit).
    pub now: Instant,
    /// Held until the response ends (inFlightReq slots).
    pub guards: Vec<Guard>,
    /// How long the core waits before forwarding (rateLimit shaping); usually zero.
    pub delay: Duration,
    /// `customRequestHeaders` removed `X-Forwarded-For`: the core must not add it either.
    pub drop_x_forwarded_for: bool,
    /// User authenticated by `basicAuth` (for the access log).
    pub user: Option<String>,
    /// What a middleware decided at request time and needs at response time, by middleware id.
    notes: Vec<(u64, headers::Note)>,
    /// The compress middlewares (by id) that take this answer, and whether they encode it.
    compress_for: Vec<(u64, bool)>,
    /// The request as each `errors` middleware (by id) saw it.
    originals: Vec<(u64, Box<errors::Original>)>,
    /// The request body as a `buffering` middleware read it (replayed by its retries).
    pub buffered: Option<Buffered>,
    /// The request head as sent upstream, kept when a `buffering` middleware may resend it.
    pub resend: Option<Box<http::request::Parts>>,
    /// The request is a HEAD (its answer's length is not its body's).
    pub head: bool,
    /// After a `buffering` middleware's resends: the server that answered last, and how many
    /// resends were made (for the access log).
    pub resent: Option<(String, u32)>,
    /// When each circuitBreaker (by id) let the request through.
    breaker_starts: Vec<(u64, Instant)>,
}

impl Ctx {
    pub fn new(client_ip: IpAddr, scheme: &'static str, now: Instant) -> Self {
        Ctx {
            client_ip,
            scheme,
            now,
            guards: Vec::new(),
            delay: Duration::ZERO,
            drop_x_forwarded_for: false,
            user: None,
            notes: Vec::new(),
            compress_for: Vec::new(),
            originals: Vec::new(),
            buffered: None,
            resend: None,
            head: false,
            breaker_starts: Vec::new(),
            resent: None,
        }
    }

    fn note(&self, id: u64) -> Option<&headers::Note> {
        self.notes.iter().find(|(i, _)| *i == id).map(|(_, n)| n)
    }

    fn set_note(&mut self, id: u64, note: headers::Note) {
        match self.notes.iter_mut().find(|(i, _)| *i == id) {
            Some(slot) => slot.1 = note,
            None => self.notes.push((id, note)),
        }
    }
}

/// A compiled middleware: its configuration fixed, its live state (rate-limit buckets,
/// in-flight counts, the basicAuth cache) inside behind short locks; `Send + Sync`, shared by all
/// requests of the snapshots that keep it.
pub struct Middleware {
    id: u64,
    kind: Kind,
}

enum Kind {
    AddPrefix(path::AddPrefix),
    StripPrefix(path::StripPrefix),
    StripPrefixRegex(path::StripPrefixRegex),
    ReplacePath(path::ReplacePath),
    ReplacePathRegex(path::ReplacePathRegex),
    RedirectScheme(redirect::RedirectScheme),
    RedirectRegex(redirect::RedirectRegex),
    Headers(Box<headers::Headers>),
    BasicAuth(Box<auth::BasicAuth>),
    IpAllowList(ip::IpAllowList),
    RateLimit(limit::RateLimit),
    InFlightReq(limit::InFlightReq),
    Retry(limit::Retry),
    Compress(compress::Compress),
    Errors(Box<errors::Errors>),
    Buffering(Box<buffering::Buffering>),
    CircuitBreaker(Box<circuit::CircuitBreaker>),
}

impl std::fmt::Debug for Middleware {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Middleware")
            .field("type", &self.type_name())
            .finish_non_exhaustive()
    }
}

impl Middleware {
    /// Traefik's name of this middleware's type (`"stripPrefix"`, ...), for logs and the API.
    pub fn type_name(&self) -> &'static str {
        match &self.kind {
            Kind::AddPrefix(_) => "addPrefix",
            Kind::StripPrefix(_) => "stripPrefix",
            Kind::StripPrefixRegex(_) => "stripPrefixRegex",
            Kind::ReplacePath(_) => "replacePath",
            Kind::ReplacePathRegex(_) => "replacePathRegex",
            Kind::RedirectScheme(_) => "redirectScheme",
            Kind::RedirectRegex(_) => "redirectRegex",
            Kind::Headers(_) => "headers",
            Kind::BasicAuth(_) => "basicAuth",
            Kind::IpAllowList(_) => "ipAllowList",
            Kind::RateLimit(_) => "rateLimit",
            Kind::InFlightReq(_) => "inFlightReq",
            Kind::Retry(_) => "retry",
            Kind::Compress(_) => "compress",
            Kind::Errors(_) => "errors",
            Kind::Buffering(_) => "buffering",
            Kind::CircuitBreaker(_) => "circuitBreaker",
        }
    }

    /// Request phase: rewrite `req` in place, or answer.
    pub fn on_request(&self, req: &mut http::request::Parts, ctx: &mut Ctx) -> Flow {
        match &self.kind {
            Kind::AddPrefix(m) => m.on_request(req),
            Kind::StripPrefix(m) => m.on_request(req),
            Kind::StripPrefixRegex(m) => m.on_request(req),
            Kind::ReplacePath(m) => m.on_request(req),
            Kind::ReplacePathRegex(m) => m.on_request(req),
            Kind::RedirectScheme(m) => m.on_request(req, ctx),
            Kind::RedirectRegex(m) => m.on_request(req, ctx),
            Kind::Headers(m) => m.on_request(self.id, req, ctx),
            Kind::BasicAuth(m) => m.on_request(req, ctx),
            Kind::IpAllowList(m) => m.on_request(req, ctx),
            Kind::RateLimit(m) => m.on_request(req, ctx),
            Kind::InFlightReq(m) => m.on_request(req, ctx),
            Kind::Retry(_) => Flow::Continue,
            Kind::Compress(m) => m.on_request(req, ctx),
            Kind::Errors(m) => {
                m.on_request(self.id, req, ctx);
                Flow::Continue
            }
            Kind::Buffering(m) if m.request_too_large(req) => {
                let status = http::StatusCode::PAYLOAD_TOO_LARGE;
                Flow::Respond(util::text_response(status, util::status_text(status)))
            }
            Kind::Buffering(_) => Flow::Continue,
            Kind::CircuitBreaker(m) => m.on_request(self.id, ctx),
        }
    }

    /// The outcome of the [`Flow::Verify`] this middleware returned; never `Verify` again.
    pub fn verified(&self, v: Verified, req: &mut http::request::Parts, ctx: &mut Ctx) -> Flow {
        match &self.kind {
            Kind::BasicAuth(m) => m.verified(v, req, ctx),
            // Only basicAuth hands out checks; anything else is a bug, and fails closed.
            _ => Flow::Respond(util::text_response(
                http::StatusCode::INTERNAL_SERVER_ERROR,
                "unexpected password check\n",
            )),
        }
    }

    /// Response phase: adjust the response head (only `headers` does anything here).
    pub fn on_response(&self, ctx: &Ctx, resp: &mut http::response::Parts) {
        match &self.kind {
            Kind::Headers(m) => m.on_response(ctx.note(self.id), resp),
            Kind::Compress(m) => m.on_response(ctx, resp),
            _ => {}
        }
    }

    /// The answer with this status passed through this middleware on its way back (before
    /// [`Middleware::on_response`]; only circuitBreaker records it).
    pub fn on_status(&self, ctx: &Ctx, status: http::StatusCode) {
        if let Kind::CircuitBreaker(m) = &self.kind {
            m.on_response(self.id, ctx, status);
        }
    }

    /// This `errors` middleware and its id (the core fetches the page).
    pub fn errors(&self) -> Option<(&errors::Errors, u64)> {
        match &self.kind {
            Kind::Errors(m) => Some((m, self.id)),
            _ => None,
        }
    }

    /// The page service of an `errors` middleware, to be qualified and checked by the
    /// assembler before the middleware is shared.
    pub fn errors_service_mut(&mut self) -> Option<&mut String> {
        match &mut self.kind {
            Kind::Errors(m) => Some(&mut m.service),
            _ => None,
        }
    }

    /// This `buffering` middleware (the core reads the bodies).
    pub fn buffering(&self) -> Option<&buffering::Buffering> {
        match &self.kind {
            Kind::Buffering(m) => Some(m),
            _ => None,
        }
    }

    /// `"standby"`, `"tripped"` or `"recovering"` for a circuitBreaker (for the API).
    pub fn breaker_state(&self) -> Option<&'static str> {
        match &self.kind {
            Kind::CircuitBreaker(m) => Some(m.state()),
            _ => None,
        }
    }

    /// `Some((attempts, initial_interval))` for `retry`; the core performs the retries.
    pub fn retry(&self) -> Option<(u32, Duration)> {
        match &self.kind {
            Kind::Retry(r) => Some((r.attempts, r.initial_interval)),
            _ => None,
        }
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The Traefik names of the types set in `c`.
fn types_set(c: &MiddlewareConfig) -> Vec<&'static str> {
    let present = [
        ("addPrefix", c.add_prefix.is_some()),
        ("stripPrefix", c.strip_prefix.is_some()),
        ("stripPrefixRegex", c.strip_prefix_regex.is_some()),
        ("replacePath", c.replace_path.is_some()),
        ("replacePathRegex", c.replace_path_regex.is_some()),
        ("chain", c.chain.is_some()),
        ("ipAllowList", c.ip_allow_list.is_some()),
        ("ipWhiteList", c.ip_white_list.is_some()),
        ("headers", c.headers.is_some()),
        ("rateLimit", c.rate_limit.is_some()),
        ("redirectRegex", c.redirect_regex.is_some()),
        ("redirectScheme", c.redirect_scheme.is_some()),
        ("basicAuth", c.basic_auth.is_some()),
        ("inFlightReq", c.in_flight_req.is_some()),
        ("retry", c.retry.is_some()),
        ("errors", c.errors.is_some()),
        ("digestAuth", c.digest_auth.is_some()),
        ("forwardAuth", c.forward_auth.is_some()),
        ("buffering", c.buffering.is_some()),
        ("circuitBreaker", c.circuit_breaker.is_some()),
        ("compress", c.compress.is_some()),
        ("passTLSClientCert", c.pass_tls_client_cert.is_some()),
        ("contentType", c.content_type.is_some()),
        ("grpcWeb", c.grpc_web.is_some()),
        ("plugin", c.plugin.is_some()),
    ];
    present.iter().filter(|p| p.1).map(|p| p.0).collect()
}

/// Compiles one middleware table. Errors: no type or several types set, an invalid value (bad
/// regex, CIDR, header, hash, status), a deprecated option Traefik v3 replaced, or a type boma
/// does not implement ([`MiddlewareError::Unsupported`]).
pub fn compile(cfg: &MiddlewareConfig) -> Result<Compiled, MiddlewareError> {
    compile_with(cfg, Bounds::default())
}

/// Bounds on the live state a compiled middleware keeps (from `[limits]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Client sources tracked by one rateLimit or inFlightReq.
    pub max_sources: usize,
    /// Bytes all buffering middlewares together keep in memory (the rest is spilled).
    pub max_buffered_memory: usize,
    /// Longest body a buffering middleware reads when its own maximum is 0.
    pub max_buffered_body: u64,
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds {
            max_sources: MAX_SOURCES,
            max_buffered_memory: 32 << 20,
            max_buffered_body: 256 << 20,
        }
    }
}

/// [`compile`] with explicit bounds.
pub fn compile_with(cfg: &MiddlewareConfig, bounds: Bounds) -> Result<Compiled, MiddlewareError> {
    let name = match types_set(cfg).as_slice() {
        [] => return Err(MiddlewareError::Empty),
        [one] => *one,
        many => return Err(MiddlewareError::Several(many.join(", "))),
    };
    let c = cfg;
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let kind = if let Some(x) = &c.add_prefix {
        Kind::AddPrefix(path::AddPrefix::compile(x)?)
    } else if let Some(x) = &c.strip_prefix {
        Kind::StripPrefix(path::StripPrefix::compile(x)?)
    } else if let Some(x) = &c.strip_prefix_regex {
        Kind::StripPrefixRegex(path::StripPrefixRegex::compile(x)?)
    } else if let Some(x) = &c.replace_path {
        Kind::ReplacePath(path::ReplacePath::compile(x)?)
    } else if let Some(x) = &c.replace_path_regex {
        Kind::ReplacePathRegex(path::ReplacePathRegex::compile(x)?)
    } else if let Some(x) = &c.chain {
        return Ok(Compiled::Chain(x.middlewares.clone()));
    } else if let Some(x) = c.ip_allow_list.as_ref().or(c.ip_white_list.as_ref()) {
        Kind::IpAllowList(ip::IpAllowList::compile(x)?)
    } else if let Some(x) = &c.headers {
        Kind::Headers(Box::new(headers::Headers::compile(x)?))
    } else if let Some(x) = &c.rate_limit {
        Kind::RateLimit(limit::RateLimit::compile(x, bounds.max_sources)?)
    } else if let Some(x) = &c.redirect_regex {
        Kind::RedirectRegex(redirect::RedirectRegex::compile(x)?)
    } else if let Some(x) = &c.redirect_scheme {
        Kind::RedirectScheme(redirect::RedirectScheme::compile(x)?)
    } else if let Some(x) = &c.basic_auth {
        Kind::BasicAuth(Box::new(auth::BasicAuth::compile(x)?))
    } else if let Some(x) = &c.in_flight_req {
        Kind::InFlightReq(limit::InFlightReq::compile(x, bounds.max_sources)?)
    } else if let Some(x) = &c.retry {
        Kind::Retry(limit::Retry::compile(x)?)
    } else if let Some(x) = &c.compress {
        Kind::Compress(compress::Compress::compile(x, id)?)
    } else if let Some(x) = &c.errors {
        Kind::Errors(Box::new(errors::Errors::compile(x)?))
    } else if let Some(x) = &c.buffering {
        Kind::Buffering(Box::new(buffering::Buffering::compile(x, &bounds)?))
    } else if let Some(x) = &c.circuit_breaker {
        Kind::CircuitBreaker(Box::new(circuit::CircuitBreaker::compile(x)?))
    } else {
        return Err(MiddlewareError::Unsupported(name));
    };
    Ok(Compiled::One(Middleware { id, kind }))
}
