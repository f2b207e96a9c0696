//! Redirect middlewares: `redirectScheme` and `redirectRegex`.
//!
//! Both rebuild the URL the client used (`scheme://host[:port]/path?query`), rewrite it with a
//! regex and answer with a redirect when the result differs; an unchanged URL lets the request
//! through. Status codes follow Traefik: GET gets 302 (301 when `permanent`), every other
//! method 307 (308), so that the method and body are kept. A rewritten URL that Go's URL
//! parser would reject answers 502, as Traefik does. Nothing here reads a body or the clock.

use std::sync::OnceLock;

use http::header::{HeaderValue, LOCATION};
use http::{Method, StatusCode};
use regex::Regex;
use serde::Deserialize;

use super::util;
use super::{Ctx, Flow, MiddlewareError};

/// `redirectScheme`: redirect to `scheme` (and `port`) when the request used another one.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedirectSchemeConfig {
    #[serde(default)]
    pub scheme: String,
    /// A string in Traefik (`"8443"`); a number is accepted too.
    #[serde(default, deserialize_with = "util::scalar_string")]
    pub port: String,
    #[serde(default, deserialize_with = "util::boolean")]
    pub permanent: bool,
}

/// `redirectRegex`: redirect to `replacement` (`$1`, `${name}`) when `regex` matches the URL.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedirectRegexConfig {
    #[serde(default)]
    pub regex: String,
    #[serde(default)]
    pub replacement: String,
    #[serde(default, deserialize_with = "util::boolean")]
    pub permanent: bool,
}

/// Traefik's split of a URL into scheme, host, port and the rest (ASCII `\w`, as in Go).
fn uri_pattern() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"^(https?://)?(\[[0-9A-Za-z_:.]+\]|[0-9A-Za-z_.\-]+)?(:[0-9]+)?(.*)$")
            .unwrap_or_else(|_| unreachable!("constant regex"))
    })
}

fn redirect_status(method: &Method, permanent: bool) -> StatusCode {
    match (method == Method::GET, permanent) {
        (true, false) => StatusCode::FOUND,
        (false, false) => StatusCode::TEMPORARY_REDIRECT,
        (true, true) => StatusCode::MOVED_PERMANENTLY,
        (false, true) => StatusCode::PERMANENT_REDIRECT,
    }
}

/// The answer for a rewritten URL: a redirect, or 502 when Go's parser would refuse the URL.
fn moved(method: &Method, permanent: bool, url: &str) -> Flow {
    let location = check_url(url).and_then(|u| HeaderValue::from_str(&u).ok());
    let Some(location) = location else {
        return Flow::Respond(util::text_response(
            StatusCode::BAD_GATEWAY,
            util::status_text(StatusCode::BAD_GATEWAY),
        ));
    };
    let status = redirect_status(method, permanent);
    let mut resp = util::text_response(status, util::status_text(status));
    resp.headers_mut().insert(LOCATION, location);
    Flow::Respond(resp)
}

/// Refuses what Go's `url.Parse` refuses that matters here (control characters, malformed
/// escapes, escaped ASCII in the host, a non-numeric port) and escapes characters that cannot
/// appear in a URL.
fn check_url(url: &str) -> Option<String> {
    let b = url.as_bytes();
    if b.iter().any(|&c| c < 0x20 || c == 0x7f) {
        return None;
    }
    for (i, &c) in b.iter().enumerate() {
        if c == b'%'
            && !(i + 2 < b.len() && b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit())
        {
            return None;
        }
    }
    if let Some(after) = scheme_end(url).map(|i| &url[i + 3..]) {
        let authority = &after[..after.find(['/', '?', '#']).unwrap_or(after.len())];
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let port = if let Some(rest) = host.strip_prefix('[') {
            rest.split_once(']').map(|(_, p)| p)?
        } else {
            host.rfind(':').map_or("", |i| &host[i..])
        };
        let port_ok = port.is_empty()
            || (port.starts_with(':') && port[1..].bytes().all(|c| c.is_ascii_digit()));
        if !port_ok || host_has_bad_escape(host) || host.contains(' ') {
            return None;
        }
    }
    Some(util::escape_url_unsafe(url))
}

/// Index of `://` when `url` starts with a scheme.
fn scheme_end(url: &str) -> Option<usize> {
    let i = url.find("://")?;
    let scheme = &url[..i];
    let mut chars = scheme.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    (first_ok && rest_ok).then_some(i)
}

/// Go only allows `%25` and escapes of non-ASCII bytes in a host.
fn host_has_bad_escape(host: &str) -> bool {
    let b = host.as_bytes();
    (0..b.len())
        .any(|i| b[i] == b'%' && i + 2 < b.len() && &host[i..i + 3] != "%25" && b[i + 1] < b'8')
}

/// `host` and `:port` of a `Host` value like Go's `net.SplitHostPort` (brackets kept).
fn split_host_port(host: &str) -> (&str, &str) {
    if host.starts_with('[') {
        if let Some(end) = host.find(']') {
            let rest = &host[end + 1..];
            if rest.starts_with(':') {
                return (&host[..=end], rest);
            }
        }
        return (host, "");
    }
    match host.find(':') {
        Some(i) if host[i + 1..].find(':').is_none() => (&host[..i], &host[i..]),
        _ => (host, ""),
    }
}

fn request_uri(req: &http::request::Parts) -> &str {
    req.uri.path_and_query().map_or("/", |pq| pq.as_str())
}

pub(crate) struct RedirectScheme {
    replacement: String,
    permanent: bool,
}

impl RedirectScheme {
    pub(crate) fn compile(c: &RedirectSchemeConfig) -> Result<Self, MiddlewareError> {
        if c.scheme.is_empty() {
            return Err(MiddlewareError::invalid(
                "redirectScheme",
                "you must provide a target scheme",
            ));
        }
        let default_port =
            (c.scheme == "http" && c.port == "80") || (c.scheme == "https" && c.port == "443");
        let port = if c.port.is_empty() || default_port {
            String::new()
        } else {
            format!(":{}", c.port)
        };
        let esc = |s: &str| s.replace('$', "$$");
        Ok(RedirectScheme {
            replacement: format!("{}://${{2}}{}${{4}}", esc(&c.scheme), esc(&port)),
            permanent: c.permanent,
        })
    }

    /// The URL as the client sent it: entrypoint scheme, overridden by `X-Forwarded-Proto`
    /// (`ws`/`wss` count as `http`/`https`), default ports dropped.
    fn client_url(req: &http::request::Parts, ctx: &Ctx) -> String {
        let (host, mut port) = split_host_port(util::request_host(req).unwrap_or(""));
        let mut scheme = if ctx.scheme == "https" {
            "https"
        } else {
            "http"
        };
        let xfp = req
            .headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok());
        match xfp {
            Some(p) if p.eq_ignore_ascii_case("http") || p.eq_ignore_ascii_case("ws") => {
                scheme = "http"
            }
            Some(p) if p.eq_ignore_ascii_case("https") || p.eq_ignore_ascii_case("wss") => {
                scheme = "https"
            }
            _ => {}
        }
        if (scheme == "http" && port == ":80") || (scheme == "https" && port == ":443") {
            port = "";
        }
        format!("{scheme}://{host}{port}{}", request_uri(req))
    }

    pub(crate) fn on_request(&self, req: &mut http::request::Parts, ctx: &mut Ctx) -> Flow {
        let old = Self::client_url(req, ctx);
        if !uri_pattern().is_match(&old) {
            return Flow::Continue;
        }
        let new = uri_pattern().replace_all(&old, self.replacement.as_str());
        if new == old {
            return Flow::Continue;
        }
        moved(&req.method, self.permanent, &new)
    }
}

pub(crate) struct RedirectRegex {
    regex: Regex,
    replacement: String,
    permanent: bool,
}

impl RedirectRegex {
    pub(crate) fn compile(c: &RedirectRegexConfig) -> Result<Self, MiddlewareError> {
        Ok(RedirectRegex {
            regex: util::regex("redirectRegex", &c.regex)?,
            replacement: c.replacement.clone(),
            permanent: c.permanent,
        })
    }

    pub(crate) fn on_request(&self, req: &mut http::request::Parts, ctx: &mut Ctx) -> Flow {
        let scheme = if ctx.scheme == "https" {
            "https"
        } else {
            "http"
        };
        let host = util::request_host(req).unwrap_or("");
        let old = format!("{scheme}://{host}{}", request_uri(req));
        if !self.regex.is_match(&old) {
            return Flow::Continue;
        }
        let new = self.regex.replace_all(&old, self.replacement.as_str());
        if new == old {
            return Flow::Continue;
        }
        moved(&req.method, self.permanent, &new)
    }
}
