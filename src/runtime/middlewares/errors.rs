//! `errors`: answers whose status is in `status` are replaced by a page fetched from another
//! service, as Traefik's customErrors does.
//!
//! The page request is a GET for `query` (with `{status}`, `{originalStatus}` and `{url}`
//! filled in) with the original request's `Host` and headers (or only `errorRequestHeaders`),
//! as the request looked when it reached this middleware. The client gets the page's headers
//! and body with the caught status (or its `statusRewrites` replacement); if the page service
//! fails, its error text with that status. The original answer's body is dropped unread.
//!
//! This module decides and builds the request; the proxy core sends it (it owns the upstream
//! clients and the snapshot where the service is looked up by name).

use std::collections::BTreeMap;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, Uri, Version, request};
use serde::Deserialize;

use super::util::{self, ScalarString};
use super::{Ctx, MiddlewareError};

const KIND: &str = "errors";

/// `[http.middlewares.NAME.errors]`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ErrorsConfig {
    #[serde(default, deserialize_with = "util::str_list")]
    pub status: Vec<String>,
    #[serde(default)]
    pub status_rewrites: BTreeMap<String, ScalarInt>,
    #[serde(default, deserialize_with = "util::scalar_string")]
    pub service: String,
    #[serde(default, deserialize_with = "util::scalar_string")]
    pub query: String,
    #[serde(default, deserialize_with = "opt_list")]
    pub error_request_headers: Option<Vec<String>>,
}

/// An integer that labels write as a string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScalarInt(pub String);

impl<'de> Deserialize<'de> for ScalarInt {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        ScalarString::deserialize(d).map(|s| ScalarInt(s.0))
    }
}

fn opt_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    util::str_list(d).map(Some)
}

/// Inclusive status ranges.
type Ranges = Vec<(u16, u16)>;

fn ranges(list: &[String]) -> Result<Ranges, MiddlewareError> {
    let mut out = Vec::new();
    for item in list.iter().flat_map(|s| s.split(',')) {
        let item = item.trim();
        let (lo, hi) = item.split_once('-').unwrap_or((item, item));
        let parse = |s: &str| s.trim().parse::<u16>().ok();
        match (parse(lo), parse(hi)) {
            (Some(lo), Some(hi)) => out.push((lo, hi)),
            _ => {
                return Err(MiddlewareError::invalid(
                    KIND,
                    format!("status {item:?} is not a code or a range such as 500-599"),
                ));
            }
        }
    }
    Ok(out)
}

fn contains(r: &Ranges, code: u16) -> bool {
    r.iter().any(|&(lo, hi)| code >= lo && code <= hi)
}

pub struct Errors {
    ranges: Ranges,
    rewrites: Vec<(Ranges, StatusCode)>,
    /// The page service, qualified by the assembler (`name@provider`).
    pub(crate) service: String,
    query: String,
    headers: Option<Vec<HeaderName>>,
}

/// The request as it reached an `errors` middleware (kept in [`Ctx`] until the answer).
#[derive(Debug)]
pub struct Original {
    headers: HeaderMap,
    host: String,
    uri: Uri,
}

impl Errors {
    pub fn compile(c: &ErrorsConfig) -> Result<Self, MiddlewareError> {
        if c.service.trim().is_empty() {
            return Err(MiddlewareError::invalid(KIND, "service is required"));
        }
        let ranges = ranges(&c.status)?;
        if ranges.is_empty() {
            return Err(MiddlewareError::invalid(KIND, "status lists no code"));
        }
        let mut rewrites = Vec::new();
        for (from, to) in &c.status_rewrites {
            let to = (to.0.trim().parse::<u16>().ok())
                .and_then(|n| StatusCode::from_u16(n).ok())
                .filter(|s| s.as_u16() >= 200)
                .ok_or_else(|| {
                    MiddlewareError::invalid(KIND, format!("statusRewrites {from:?}: {:?}", to.0))
                })?;
            rewrites.push((ranges_one(from)?, to));
        }
        let headers = match &c.error_request_headers {
            None => None,
            Some(list) => Some(
                (list.iter())
                    .map(|h| {
                        HeaderName::from_bytes(h.trim().as_bytes()).map_err(|_| {
                            MiddlewareError::invalid(KIND, format!("bad header name {h:?}"))
                        })
                    })
                    .collect::<Result<_, _>>()?,
            ),
        };
        Ok(Errors {
            ranges,
            rewrites,
            service: c.service.trim().to_string(),
            query: c.query.clone(),
            headers,
        })
    }

    /// Keep what the page request needs (only routes with `errors` pay for the copy).
    pub fn on_request(&self, id: u64, req: &request::Parts, ctx: &mut Ctx) {
        let headers = match &self.headers {
            None => req.headers.clone(),
            Some(names) => {
                let mut h = HeaderMap::new();
                for n in names {
                    for v in req.headers.get_all(n) {
                        h.append(n.clone(), v.clone());
                    }
                }
                h
            }
        };
        let host = util::request_host(req).unwrap_or("").to_string();
        let original = Original {
            headers,
            host,
            uri: req.uri.clone(),
        };
        ctx.originals.push((id, Box::new(original)));
    }

    /// The page service (qualified once assembled).
    pub fn service(&self) -> &str {
        &self.service
    }

    /// Whether an answer with `status` is replaced by the page.
    /// Informational answers (a 101 above all) pass, as Traefik's code catcher lets them.
    pub fn catches(&self, status: StatusCode) -> bool {
        !status.is_informational() && contains(&self.ranges, status.as_u16())
    }

    /// The status the client gets for a caught answer with `status` (its rewrite, if any).
    pub fn status_for(&self, status: StatusCode) -> StatusCode {
        (self.rewrites.iter())
            .find(|(r, _)| contains(r, status.as_u16()))
            .map_or(status, |(_, to)| *to)
    }

    /// The status the client gets and the page request, for a caught answer with `status`
    /// (`None`: no page can be asked for; the client gets that status's text).
    pub fn page_request(
        &self,
        id: u64,
        status: StatusCode,
        ctx: &Ctx,
    ) -> Option<(StatusCode, request::Parts)> {
        let orig = ctx.originals.iter().find(|(i, _)| *i == id)?.1.as_ref();
        let code = self.status_for(status);
        let mut target = String::from("/");
        if !self.query.is_empty() {
            let q = self.query.trim_start_matches('/');
            let url = format!(
                "{}://{}{}",
                ctx.scheme,
                orig.host,
                orig.uri.path_and_query().map_or("/", |p| p.as_str())
            );
            target.push_str(
                &q.replace("{status}", code.as_str())
                    .replace("{originalStatus}", status.as_str())
                    .replace("{url}", &query_escape(&url)),
            );
        }
        // Go's URL parser takes what `http::Uri` refuses (a space, say): escape it first.
        let uri: Uri = util::escape_url_unsafe(&target).parse().ok()?;
        let (mut parts, ()) = http::Request::new(()).into_parts();
        parts.method = Method::GET;
        parts.uri = uri;
        parts.version = Version::HTTP_11;
        parts.headers = orig.headers.clone();
        for h in [
            header::CONTENT_LENGTH,
            header::TRANSFER_ENCODING,
            header::EXPECT,
        ] {
            parts.headers.remove(h);
        }
        if let Ok(host) = HeaderValue::from_str(&orig.host) {
            parts.headers.insert(header::HOST, host);
        }
        Some((code, parts))
    }
}

fn ranges_one(s: &str) -> Result<Ranges, MiddlewareError> {
    ranges(&[s.to_string()])
}

/// Go's `url.QueryEscape`.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(status: &[&str], query: &str) -> ErrorsConfig {
        ErrorsConfig {
            status: status.iter().map(|s| s.to_string()).collect(),
            service: "pages".into(),
            query: query.into(),
            ..Default::default()
        }
    }

    #[test]
    fn ranges_and_page_request() {
        let mut c = cfg(
            &["500-599", "404,418"],
            "/{status}.html?from={url}&was={originalStatus}",
        );
        c.status_rewrites
            .insert("418".into(), ScalarInt("404".into()));
        let e = Errors::compile(&c).unwrap();
        assert!(e.catches(StatusCode::BAD_GATEWAY));
        assert!(e.catches(StatusCode::NOT_FOUND));
        assert!(!e.catches(StatusCode::FORBIDDEN));
        let (parts, ()) = http::Request::builder()
            .method("POST")
            .uri("/a?x=1")
            .header("host", "app.test")
            .header("accept", "text/html")
            .header("content-length", "3")
            .body(())
            .unwrap()
            .into_parts();
        let mut ctx = Ctx::new(
            "127.0.0.1".parse().unwrap(),
            "https",
            std::time::Instant::now(),
        );
        e.on_request(7, &parts, &mut ctx);
        let (code, page) = e.page_request(7, StatusCode::IM_A_TEAPOT, &ctx).unwrap();
        assert_eq!(code, 404);
        assert_eq!(page.method, Method::GET);
        assert_eq!(
            page.uri.to_string(),
            "/404.html?from=https%3A%2F%2Fapp.test%2Fa%3Fx%3D1&was=418"
        );
        assert_eq!(page.headers["host"], "app.test");
        assert_eq!(page.headers["accept"], "text/html");
        assert!(!page.headers.contains_key("content-length"));
        assert!(e.page_request(8, StatusCode::IM_A_TEAPOT, &ctx).is_none());
    }

    #[test]
    fn only_listed_headers_and_no_query() {
        let mut c = cfg(&["500"], "");
        c.error_request_headers = Some(vec!["Accept".into()]);
        let e = Errors::compile(&c).unwrap();
        let (parts, ()) = http::Request::builder()
            .uri("http://app.test/x")
            .header("accept", "text/html")
            .header("cookie", "secret")
            .body(())
            .unwrap()
            .into_parts();
        let mut ctx = Ctx::new(
            "127.0.0.1".parse().unwrap(),
            "http",
            std::time::Instant::now(),
        );
        e.on_request(1, &parts, &mut ctx);
        let (code, page) = e
            .page_request(1, StatusCode::INTERNAL_SERVER_ERROR, &ctx)
            .unwrap();
        assert_eq!(code, 500);
        assert_eq!(page.uri, "/");
        assert_eq!(page.headers["host"], "app.test");
        assert!(!page.headers.contains_key("cookie"));
    }

    #[test]
    fn bad_configuration() {
        for c in [
            cfg(&[], "/"),
            cfg(&["5xx"], "/"),
            cfg(&["500-"], "/"),
            ErrorsConfig {
                service: String::new(),
                ..cfg(&["500"], "/")
            },
        ] {
            assert!(Errors::compile(&c).is_err(), "{c:?}");
        }
        let mut c = cfg(&["500"], "/");
        c.status_rewrites
            .insert("500".into(), ScalarInt("abc".into()));
        assert!(Errors::compile(&c).is_err());
    }
}
