//! The `headers` middleware: custom request/response headers, CORS (preflights answered here),
//! and the security headers of Traefik's `unrolled/secure` integration (STS, frame options,
//! nosniff, XSS filter, CSP, referrer and permissions policies, allowed hosts).
//!
//! Order follows Traefik, where the custom/CORS handler wraps the secure one: on the request,
//! a CORS preflight is answered first (with nothing else added), then custom request headers
//! are applied, then the allowed-hosts check runs; on the response, security headers are set
//! first, then custom response headers (which may override or delete them), then CORS headers.
//! Everything is parsed at compile time; per request this only compares and inserts headers.

use std::collections::BTreeMap;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, Response, StatusCode};
use serde::Deserialize;

use super::util;
use super::{Ctx, Flow, MiddlewareError};

const KIND: &str = "headers";

/// `headers`: Traefik's field names; the deprecated `ssl*`, `featurePolicy` and
/// `accessControlAllowOrigin` options are parsed only to be refused with their replacement.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HeadersConfig {
    #[serde(default)]
    pub custom_request_headers: BTreeMap<String, String>,
    #[serde(default)]
    pub custom_response_headers: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "util::boolean")]
    pub access_control_allow_credentials: bool,
    #[serde(default, deserialize_with = "util::str_list")]
    pub access_control_allow_headers: Vec<String>,
    #[serde(default, deserialize_with = "util::str_list")]
    pub access_control_allow_methods: Vec<String>,
    #[serde(default, deserialize_with = "util::str_list")]
    pub access_control_allow_origin_list: Vec<String>,
    #[serde(default, deserialize_with = "util::str_list")]
    pub access_control_allow_origin_list_regex: Vec<String>,
    #[serde(default, deserialize_with = "util::str_list")]
    pub access_control_expose_headers: Vec<String>,
    #[serde(default, deserialize_with = "util::int")]
    pub access_control_max_age: i64,
    #[serde(default, deserialize_with = "util::boolean")]
    pub add_vary_header: bool,
    #[serde(default, deserialize_with = "util::str_list")]
    pub allowed_hosts: Vec<String>,
    #[serde(default, deserialize_with = "util::str_list")]
    pub hosts_proxy_headers: Vec<String>,
    #[serde(default, rename = "sslProxyHeaders")]
    pub ssl_proxy_headers: BTreeMap<String, String>,
    #[serde(default, rename = "stsSeconds", deserialize_with = "util::int")]
    pub sts_seconds: i64,
    #[serde(
        default,
        rename = "stsIncludeSubdomains",
        deserialize_with = "util::boolean"
    )]
    pub sts_include_subdomains: bool,
    #[serde(default, rename = "stsPreload", deserialize_with = "util::boolean")]
    pub sts_preload: bool,
    #[serde(default, rename = "forceSTSHeader", deserialize_with = "util::boolean")]
    pub force_sts_header: bool,
    #[serde(default, deserialize_with = "util::boolean")]
    pub frame_deny: bool,
    #[serde(default)]
    pub custom_frame_options_value: String,
    #[serde(default, deserialize_with = "util::boolean")]
    pub content_type_nosniff: bool,
    #[serde(default, deserialize_with = "util::boolean")]
    pub browser_xss_filter: bool,
    #[serde(default, rename = "customBrowserXSSValue")]
    pub custom_browser_xss_value: String,
    #[serde(default)]
    pub content_security_policy: String,
    #[serde(default)]
    pub content_security_policy_report_only: String,
    #[serde(default)]
    pub public_key: String,
    #[serde(default)]
    pub referrer_policy: String,
    #[serde(default)]
    pub permissions_policy: String,
    #[serde(default, deserialize_with = "util::boolean")]
    pub is_development: bool,
    // Deprecated in Traefik; refused by `compile`.
    #[serde(default)]
    pub feature_policy: Option<String>,
    #[serde(
        default,
        rename = "sslRedirect",
        deserialize_with = "util::opt_boolean"
    )]
    pub ssl_redirect: Option<bool>,
    #[serde(
        default,
        rename = "sslTemporaryRedirect",
        deserialize_with = "util::opt_boolean"
    )]
    pub ssl_temporary_redirect: Option<bool>,
    #[serde(default, rename = "sslHost")]
    pub ssl_host: Option<String>,
    #[serde(
        default,
        rename = "sslForceHost",
        deserialize_with = "util::opt_boolean"
    )]
    pub ssl_force_host: Option<bool>,
    #[serde(default)]
    pub access_control_allow_origin: Option<String>,
}

/// Decided on the request, used on the response.
#[derive(Debug, Clone, Default)]
pub(crate) struct Note {
    /// `Access-Control-Allow-Origin` value when the request's origin is allowed.
    allow_origin: Option<HeaderValue>,
    /// The request arrived over HTTPS (entrypoint TLS or an `sslProxyHeaders` match).
    ssl: bool,
}

pub(crate) struct Headers {
    has_custom_or_cors: bool,
    has_cors: bool,
    has_secure: bool,
    /// `None` value: delete the header.
    request_headers: Vec<(HeaderName, Option<HeaderValue>)>,
    drops_forwarded_for: bool,
    response_headers: Vec<(HeaderName, Option<HeaderValue>)>,
    allow_credentials: bool,
    allow_headers: Option<HeaderValue>,
    allow_methods: Option<HeaderValue>,
    origin_list: Vec<HeaderValue>,
    origin_regexes: Vec<regex::bytes::Regex>,
    expose_headers: Option<HeaderValue>,
    max_age: HeaderValue,
    add_vary: bool,
    allowed_hosts: Vec<String>,
    hosts_proxy_headers: Vec<HeaderName>,
    ssl_proxy_headers: Vec<(HeaderName, String)>,
    is_development: bool,
    sts: Option<HeaderValue>,
    force_sts: bool,
    public_key: Option<HeaderValue>,
    /// Security headers that do not depend on the request.
    fixed: Vec<(HeaderName, HeaderValue)>,
}

fn name(s: &str) -> Result<HeaderName, MiddlewareError> {
    HeaderName::from_bytes(s.as_bytes())
        .map_err(|_| MiddlewareError::invalid(KIND, format!("invalid header name {s:?}")))
}

fn value(s: &str) -> Result<HeaderValue, MiddlewareError> {
    HeaderValue::from_str(s)
        .map_err(|_| MiddlewareError::invalid(KIND, format!("invalid header value {s:?}")))
}

fn joined(list: &[String]) -> Result<Option<HeaderValue>, MiddlewareError> {
    if list.is_empty() {
        return Ok(None);
    }
    let s = list.join(",");
    if s.is_empty() {
        Ok(None)
    } else {
        value(&s).map(Some)
    }
}

fn custom(
    map: &BTreeMap<String, String>,
) -> Result<Vec<(HeaderName, Option<HeaderValue>)>, MiddlewareError> {
    map.iter()
        .map(|(k, v)| Ok((name(k)?, if v.is_empty() { None } else { Some(value(v)?) })))
        .collect()
}

fn deprecated(option: &'static str, replacement: &'static str) -> MiddlewareError {
    MiddlewareError::Deprecated {
        kind: KIND,
        option,
        replacement,
    }
}

/// Options Traefik v3 removed: refused with what replaces them.
fn refuse_deprecated(c: &HeadersConfig) -> Result<(), MiddlewareError> {
    let redirect = "a redirectScheme middleware (or an entrypoint redirection)";
    if c.ssl_redirect == Some(true) {
        return Err(deprecated("sslRedirect", redirect));
    }
    if c.ssl_temporary_redirect == Some(true) {
        return Err(deprecated("sslTemporaryRedirect", redirect));
    }
    if c.ssl_host.as_deref().is_some_and(|s| !s.is_empty()) {
        return Err(deprecated("sslHost", "a redirectRegex middleware"));
    }
    if c.ssl_force_host == Some(true) {
        return Err(deprecated("sslForceHost", "a redirectRegex middleware"));
    }
    if c.feature_policy.as_deref().is_some_and(|s| !s.is_empty()) {
        return Err(deprecated("featurePolicy", "permissionsPolicy"));
    }
    if (c.access_control_allow_origin.as_deref()).is_some_and(|s| !s.is_empty()) {
        return Err(deprecated(
            "accessControlAllowOrigin",
            "accessControlAllowOriginList",
        ));
    }
    Ok(())
}

/// Which of Traefik's three parts are configured: custom headers, CORS, security.
fn sections_set(c: &HeadersConfig) -> (bool, bool, bool) {
    let has_custom = !c.custom_request_headers.is_empty() || !c.custom_response_headers.is_empty();
    let has_cors = c.access_control_allow_credentials
        || !c.access_control_allow_headers.is_empty()
        || !c.access_control_allow_methods.is_empty()
        || !c.access_control_allow_origin_list.is_empty()
        || !c.access_control_allow_origin_list_regex.is_empty()
        || !c.access_control_expose_headers.is_empty()
        || c.access_control_max_age != 0
        || c.add_vary_header;
    let has_secure = !c.allowed_hosts.is_empty()
        || !c.hosts_proxy_headers.is_empty()
        || !c.ssl_proxy_headers.is_empty()
        || c.sts_seconds != 0
        || c.sts_include_subdomains
        || c.sts_preload
        || c.force_sts_header
        || c.frame_deny
        || !c.custom_frame_options_value.is_empty()
        || c.content_type_nosniff
        || c.browser_xss_filter
        || !c.custom_browser_xss_value.is_empty()
        || !c.content_security_policy.is_empty()
        || !c.content_security_policy_report_only.is_empty()
        || !c.public_key.is_empty()
        || !c.referrer_policy.is_empty()
        || !c.permissions_policy.is_empty()
        || c.is_development;
    (has_custom, has_cors, has_secure)
}

/// The security headers whose value does not depend on the request.
fn fixed_security_headers(
    c: &HeadersConfig,
) -> Result<Vec<(HeaderName, HeaderValue)>, MiddlewareError> {
    let mut fixed = Vec::new();
    let mut push = |n: &'static str, v: &str| -> Result<(), MiddlewareError> {
        fixed.push((HeaderName::from_static(n), value(v)?));
        Ok(())
    };
    if !c.custom_frame_options_value.is_empty() {
        push("x-frame-options", &c.custom_frame_options_value)?;
    } else if c.frame_deny {
        push("x-frame-options", "DENY")?;
    }
    if c.content_type_nosniff {
        push("x-content-type-options", "nosniff")?;
    }
    if !c.custom_browser_xss_value.is_empty() {
        push("x-xss-protection", &c.custom_browser_xss_value)?;
    } else if c.browser_xss_filter {
        push("x-xss-protection", "1; mode=block")?;
    }
    if !c.content_security_policy.is_empty() {
        push("content-security-policy", &c.content_security_policy)?;
    }
    if !c.content_security_policy_report_only.is_empty() {
        push(
            "content-security-policy-report-only",
            &c.content_security_policy_report_only,
        )?;
    }
    if !c.referrer_policy.is_empty() {
        push("referrer-policy", &c.referrer_policy)?;
    }
    if !c.permissions_policy.is_empty() {
        push("permissions-policy", &c.permissions_policy)?;
    }
    Ok(fixed)
}

/// `Strict-Transport-Security` from `stsSeconds` and its flags.
fn sts_value(c: &HeadersConfig) -> Result<Option<HeaderValue>, MiddlewareError> {
    if c.sts_seconds == 0 {
        return Ok(None);
    }
    let mut s = format!("max-age={}", c.sts_seconds);
    if c.sts_include_subdomains {
        s.push_str("; includeSubDomains");
    }
    if c.sts_preload {
        s.push_str("; preload");
    }
    value(&s).map(Some)
}

impl Headers {
    pub(crate) fn compile(c: &HeadersConfig) -> Result<Self, MiddlewareError> {
        refuse_deprecated(c)?;
        let (has_custom, has_cors, has_secure) = sections_set(c);
        if !has_custom && !has_cors && !has_secure {
            return Err(MiddlewareError::invalid(
                KIND,
                "headers configuration not valid (nothing set)",
            ));
        }
        let request_headers = custom(&c.custom_request_headers)?;
        let drops_forwarded_for = request_headers
            .iter()
            .any(|(n, v)| v.is_none() && n.as_str() == "x-forwarded-for");
        Ok(Headers {
            has_custom_or_cors: has_custom || has_cors,
            has_cors,
            has_secure,
            request_headers,
            drops_forwarded_for,
            response_headers: custom(&c.custom_response_headers)?,
            allow_credentials: c.access_control_allow_credentials,
            allow_headers: joined(&c.access_control_allow_headers)?,
            allow_methods: joined(&c.access_control_allow_methods)?,
            origin_list: c
                .access_control_allow_origin_list
                .iter()
                .map(|o| value(o))
                .collect::<Result<_, _>>()?,
            origin_regexes: c
                .access_control_allow_origin_list_regex
                .iter()
                .map(|r| util::bytes_regex(KIND, r))
                .collect::<Result<_, _>>()?,
            expose_headers: joined(&c.access_control_expose_headers)?,
            max_age: HeaderValue::from(c.access_control_max_age),
            add_vary: c.add_vary_header,
            allowed_hosts: c.allowed_hosts.clone(),
            hosts_proxy_headers: c
                .hosts_proxy_headers
                .iter()
                .map(|h| name(h))
                .collect::<Result<_, _>>()?,
            ssl_proxy_headers: c
                .ssl_proxy_headers
                .iter()
                .map(|(k, v)| Ok((name(k)?, v.clone())))
                .collect::<Result<_, MiddlewareError>>()?,
            is_development: c.is_development,
            sts: sts_value(c)?,
            force_sts: c.force_sts_header,
            public_key: if c.public_key.is_empty() {
                None
            } else {
                Some(value(&c.public_key)?)
            },
            fixed: fixed_security_headers(c)?,
        })
    }

    /// The configured origin matching `origin` (`*` answers `*`, a regex answers the origin).
    fn allowed_origin(&self, origin: &[u8]) -> Option<HeaderValue> {
        if let Some(item) = self
            .origin_list
            .iter()
            .find(|i| i.as_bytes() == b"*" || i.as_bytes() == origin)
        {
            return Some(item.clone());
        }
        if self.origin_regexes.iter().any(|r| r.is_match(origin)) {
            return HeaderValue::from_bytes(origin).ok();
        }
        None
    }

    fn preflight(&self, origin: &[u8]) -> Response<Bytes> {
        let mut resp = Response::new(Bytes::new());
        let h = resp.headers_mut();
        if self.allow_credentials {
            h.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        if let Some(v) = &self.allow_headers {
            h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v.clone());
        }
        if let Some(v) = &self.allow_methods {
            h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, v.clone());
        }
        if let Some(v) = self.allowed_origin(origin) {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        }
        h.insert(header::ACCESS_CONTROL_MAX_AGE, self.max_age.clone());
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
        resp
    }

    pub(crate) fn on_request(
        &self,
        id: u64,
        req: &mut http::request::Parts,
        ctx: &mut Ctx,
    ) -> Flow {
        if self.has_cors && req.method == Method::OPTIONS {
            let origin = req
                .headers
                .get(header::ORIGIN)
                .map_or(&b""[..], |v| v.as_bytes());
            let acrm = req.headers.get(header::ACCESS_CONTROL_REQUEST_METHOD);
            if !origin.is_empty() && acrm.is_some_and(|v| !v.is_empty()) {
                return Flow::Respond(self.preflight(origin));
            }
        }

        for (n, v) in &self.request_headers {
            match v {
                Some(v) if *n == header::HOST => util::set_request_host(req, v),
                Some(v) => {
                    req.headers.insert(n.clone(), v.clone());
                }
                // Traefik cannot delete `Host` (it is not a header there): a no-op.
                None if *n == header::HOST => {}
                None => {
                    req.headers.remove(n);
                }
            }
        }
        if self.drops_forwarded_for {
            ctx.drop_x_forwarded_for = true;
        }

        let mut note = Note::default();
        if self.has_custom_or_cors {
            let origin = req
                .headers
                .get(header::ORIGIN)
                .map_or(&b""[..], |v| v.as_bytes());
            note.allow_origin = self.allowed_origin(origin);
        }
        if self.has_secure {
            if !self.allowed_hosts.is_empty() && !self.is_development && !self.host_allowed(req) {
                let mut resp = util::go_http_error(StatusCode::INTERNAL_SERVER_ERROR, "Bad Host");
                let (mut parts, body) = resp.into_parts();
                self.custom_and_cors(&note, &mut parts);
                resp = Response::from_parts(parts, body);
                return Flow::Respond(resp);
            }
            note.ssl = ctx.scheme == "https"
                || self.ssl_proxy_headers.iter().any(|(n, v)| {
                    req.headers
                        .get(n)
                        .is_some_and(|h| h.as_bytes() == v.as_bytes())
                });
        }
        ctx.set_note(id, note);
        Flow::Continue
    }

    /// `allowedHosts` check on the request host, or on the first non-empty
    /// `hostsProxyHeaders` header when one is present.
    fn host_allowed(&self, req: &http::request::Parts) -> bool {
        let proxied = self.hosts_proxy_headers.iter().find_map(|n| {
            req.headers
                .get(n)
                .filter(|v| !v.is_empty())
                .map(|v| v.as_bytes())
        });
        let host = match proxied {
            Some(h) => h,
            None => util::request_host(req).unwrap_or("").as_bytes(),
        };
        self.allowed_hosts
            .iter()
            .any(|a| a.as_bytes().eq_ignore_ascii_case(host))
    }

    pub(crate) fn on_response(&self, note: Option<&Note>, resp: &mut http::response::Parts) {
        let default = Note::default();
        let note = note.unwrap_or(&default);
        if self.has_secure {
            let h = &mut resp.headers;
            if let Some(sts) = &self.sts
                && (note.ssl || self.force_sts)
                && !self.is_development
            {
                h.insert(header::STRICT_TRANSPORT_SECURITY, sts.clone());
            }
            for (n, v) in &self.fixed {
                h.insert(n.clone(), v.clone());
            }
            if let Some(pk) = &self.public_key
                && note.ssl
                && !self.is_development
            {
                h.insert(HeaderName::from_static("public-key-pins"), pk.clone());
            }
        }
        if self.has_custom_or_cors {
            self.custom_and_cors(note, resp);
        }
    }

    /// Custom response headers, then CORS response headers (Traefik's outer handler).
    fn custom_and_cors(&self, note: &Note, resp: &mut http::response::Parts) {
        let h = &mut resp.headers;
        for (n, v) in &self.response_headers {
            match v {
                Some(v) => {
                    h.insert(n.clone(), v.clone());
                }
                None => {
                    h.remove(n);
                }
            }
        }
        if let Some(origin) = &note.allow_origin {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        }
        if self.allow_credentials {
            h.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        if let Some(v) = &self.expose_headers {
            h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, v.clone());
        }
        if self.add_vary {
            let mut vary: Vec<u8> = Vec::new();
            for v in h.get_all(header::VARY) {
                if !vary.is_empty() {
                    vary.push(b',');
                }
                vary.extend_from_slice(v.as_bytes());
            }
            if vary != b"Origin" {
                if !vary.is_empty() {
                    vary.push(b',');
                }
                vary.extend_from_slice(b"Origin");
                if let Ok(v) = HeaderValue::from_bytes(&vary) {
                    h.insert(header::VARY, v);
                }
            }
        }
    }
}
