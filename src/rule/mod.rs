//! Traefik's small languages. Mostly the v3 router rules (this file); beside them, the docker
//! provider's `constraints` expression ([`constraint`]) and `defaultRule` template ([`template`]),
//! which share its rules: parsed once when the configuration is read, pure, bounded.
//!
//! Router rules: parse a rule string such as
//! ``Host(`a.example`) && PathPrefix(`/api`)`` once, at assemble time, into a compiled [`Rule`]
//! that the proxy evaluates per request without locking and (almost always) without allocating.
//! It also answers the questions assemble asks about a rule: which exact hosts it is limited to
//! ([`Rule::host_keys`], for the host index), which names it publishes ([`Rule::mentioned_hosts`],
//! for DNS) and its default priority ([`default_priority`]).
//!
//! This module must not do I/O, log, read the clock or keep state between calls; it must not panic
//! or recurse without bound on any input (rules come from container labels). It knows nothing of
//! routers, services or entrypoints: it only judges one request against one rule.
//!
//! Semantics follow Traefik v3 (`pkg/muxer/http`, `pkg/rules`, `vulcand/predicate`); the v2
//! multi-argument forms are accepted where their meaning is unambiguous. Accepted forms:
//!
//! | matcher | arguments | meaning |
//! |---|---|---|
//! | `Host` | `host` (v2: several) | canonical request host equals `host` (case-insensitive); `*.x` matches one label under `x`, `**.x` one or more, bare `*` every request |
//! | `HostHeader` | like `Host` | v2 alias of `Host` |
//! | `HostRegexp` | `re`; v2: several, and `{name}`/`{name:re}` templates | one argument without a template: unanchored Go regexp on the canonical host; v2 forms: anchored, text outside braces literal |
//! | `Path` / `PathPrefix` | `/path` (v2: several) | exact / prefix match on the routing path |
//! | `PathRegexp` | `re` | unanchored Go regexp on the routing path |
//! | `Method` | `m` (v2: several) | request method equals `m` upper-cased |
//! | `Header` / `HeaderRegexp` | `name`, `value`/`re` | any value of that header equals / matches |
//! | `Headers` / `HeadersRegexp` | `name`, `value`, ... (v2) | every pair holds |
//! | `Query` | `key` \[, `value`\]; v2: `key=value`, ... | some value of `key` equals `value` (`""` when absent); v2 form: first value of `key` equals `value`, `key=` means present |
//! | `QueryRegexp` | `key` \[, `re`\] | some value of `key` matches `re`; one argument is `Query(key)` |
//! | `ClientIP` | IP or CIDR (v2: several) | TCP peer address within one of them (IPv4-mapped IPv6 counts as IPv4) |
//!
//! The routing path is the raw path with every percent-encoded octet decoded except the reserved
//! ones `%3A %2F %3F %23 %5B %5D %40 %21 %24 %26 %27 %28 %29 %2A %2B %2C %3B %3D %25` (upper-case
//! hex only, as Traefik), so ``Path(`/a b`)`` matches `/a%20b`. A path with a broken
//! percent-encoding never matches a rule that looks at the path (Traefik answers 400 before routing).
//!
//! Traefik quirks kept: ``Header(`Host`, ..)`` never matches (Go moves `Host` out of the header
//! map); request methods compare case-sensitively; `%2f` (lower-case hex) is decoded in the routing
//! path while `%2F` is not. Differences: no CNAME flattening; newlines are plain whitespace (Go's
//! parser would insert a `;` after a `)` at the end of a line); the canonical host loses one
//! trailing dot before `HostRegexp` sees it.
//!
//! Rejected on purpose: v2 path and query templates (`{id:[0-9]+}` in `Path`, `PathPrefix` or a
//! v2 `Query`), because v3 reads the braces literally and the two meanings differ; a v2 `Query`
//! mixing `k=v` arguments with bare keys; Go regexp features boma's regex build lacks (`\p{..}`
//! classes, `\C`).

pub mod constraint;
#[cfg(test)]
mod fuzz_tests;
pub(crate) mod goregex;
mod lexer;
mod matcher;
mod parser;
mod request;
pub mod template;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::net::IpAddr;

pub use request::canonical_host;

/// Longest rule accepted, in bytes.
pub const MAX_RULE_LEN: usize = 64 * 1024;
/// Deepest nesting of parentheses and `!` accepted.
pub const MAX_DEPTH: usize = 64;

/// What a rule can look at. Built once per request by the proxy.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// Already canonical: see [`canonical_host`].
    pub host: &'a str,
    /// The request path as the proxy has it (raw, percent-encoded as received).
    pub path: &'a str,
    /// Raw query string without `?`.
    pub query: Option<&'a str>,
    pub method: &'a http::Method,
    pub headers: &'a http::HeaderMap,
    /// The TCP peer.
    pub client_ip: IpAddr,
}

/// A parsed, validated and compiled rule. Cheap to match; `Send + Sync`.
#[derive(Debug)]
pub struct Rule {
    source: Box<str>,
    root: matcher::Node,
    needs_path: bool,
}

/// A rule that does not parse or compile, with where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct RuleError {
    /// Byte offset into the rule source.
    pub offset: usize,
    /// 1-based, in chars.
    pub column: usize,
    pub message: String,
}

impl RuleError {
    pub(crate) fn at(src: &str, offset: usize, message: impl Into<String>) -> RuleError {
        let mut offset = offset.min(src.len());
        while !src.is_char_boundary(offset) {
            offset -= 1;
        }
        let column = src[..offset].chars().count() + 1;
        RuleError {
            offset,
            column,
            message: message.into(),
        }
    }
}

impl Rule {
    /// Parse, compile regexes and validate every argument.
    pub fn parse(src: &str) -> Result<Rule, RuleError> {
        let ast = parser::parse(src)?;
        let root = matcher::compile(src, &ast)?;
        Ok(Rule {
            source: src.into(),
            needs_path: root.needs_path(),
            root,
        })
    }

    /// Whether the request satisfies the rule.
    pub fn matches(&self, req: &Request<'_>) -> bool {
        let path: Cow<'_, [u8]> = if self.needs_path {
            match request::routing_path(req.path) {
                Some(p) => p,
                None => return false,
            }
        } else {
            Cow::Borrowed(req.path.as_bytes())
        };
        self.root.matches(req, &path)
    }

    /// `Some(hosts)` when the rule can only ever match if the canonical request host equals one
    /// of these (lower-case) names, so the proxy can index routes by host; `None` when any host
    /// could match (no `Host` on every path, `HostRegexp`, wildcards, negation over `Host`, OR
    /// with a non-host branch...). `Some(vec![])` means the rule can match no host at all.
    /// Computed on each call (once per route when a table is built), not kept.
    pub fn host_keys(&self) -> Option<Vec<String>> {
        self.root.host_keys()
    }

    /// The rule as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Every exact host name the rule mentions in a `Host` matcher that is not negated, lower-case,
    /// without a trailing dot, in order of appearance, without duplicates (names to publish in DNS).
    /// Wildcard patterns (`*.x`, `**.x`, `*`), IP literals and `host:port` forms are left out.
    /// Walked on each call (when a snapshot is assembled), not kept.
    pub fn mentioned_hosts(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.root.mentioned(&mut out);
        out
    }
}

/// Traefik's default router priority for a rule: its length in bytes (Go's `len`), less 2 for
/// every non-negated ``Host(`**.x`)`` (a double wildcard ranks below the hosts it covers).
pub fn default_priority(src: &str) -> i64 {
    let len = i64::try_from(src.len()).unwrap_or(i64::MAX);
    match parser::parse(src) {
        Ok(ast) => len - 2 * i64::try_from(parser::double_wildcards(&ast)).unwrap_or(0),
        Err(_) => len,
    }
}
