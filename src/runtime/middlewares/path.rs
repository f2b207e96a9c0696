//! Path rewriting middlewares: `addPrefix`, `stripPrefix`, `stripPrefixRegex`, `replacePath`,
//! `replacePathRegex`.
//!
//! Traefik matches prefixes and `stripPrefixRegex` against the *decoded* path and keeps the
//! escaped form for the wire; here the request URI only holds the escaped path, so matching
//! decodes on the fly and cutting happens at the matching position of the escaped path.
//! `replacePath(Regex)` work on the escaped path, as Traefik does. These middlewares never
//! answer, except 500 when a replacement yields an invalid escape (Traefik does the same).

use http::HeaderValue;
use http::header::HeaderName;
use regex::Regex;
use serde::Deserialize;

use super::util::{self, set_path};
use super::{Flow, MiddlewareError};

const X_FORWARDED_PREFIX: HeaderName = HeaderName::from_static("x-forwarded-prefix");
const X_REPLACED_PATH: HeaderName = HeaderName::from_static("x-replaced-path");

/// `addPrefix`: `prefix` (decoded form, with its leading `/`) is put before the path.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddPrefixConfig {
    #[serde(default)]
    pub prefix: String,
}

/// `stripPrefix`: the first of `prefixes` the path starts with is removed and sent in
/// `X-Forwarded-Prefix`. `forceSlash` (deprecated, default true) turns an empty result into `/`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StripPrefixConfig {
    #[serde(default, deserialize_with = "util::str_list")]
    pub prefixes: Vec<String>,
    #[serde(rename = "forceSlash", default, deserialize_with = "util::opt_boolean")]
    pub force_slash: Option<bool>,
}

/// `stripPrefixRegex`: the first regex whose leftmost match is a non-empty prefix of the path
/// strips that prefix (sent in `X-Forwarded-Prefix`).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StripPrefixRegexConfig {
    #[serde(default, deserialize_with = "util::str_list")]
    pub regex: Vec<String>,
}

/// `replacePath`: the path becomes `path` (escaped form); the old one goes to `X-Replaced-Path`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplacePathConfig {
    #[serde(default)]
    pub path: String,
}

/// `replacePathRegex`: if `regex` matches the escaped path, every match is replaced by
/// `replacement` (`$1`, `${name}`); the old path goes to `X-Replaced-Path`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplacePathRegexConfig {
    #[serde(default)]
    pub regex: String,
    #[serde(default)]
    pub replacement: String,
}

fn ensure_leading_slash(s: &str) -> String {
    if s.is_empty() || s.starts_with('/') {
        s.to_owned()
    } else {
        format!("/{s}")
    }
}

/// Appends `value` to `name` if it is a valid header value (paths from the wire always are).
fn append_bytes(req: &mut http::request::Parts, name: HeaderName, value: &[u8]) {
    if let Ok(v) = HeaderValue::from_bytes(value) {
        req.headers.append(name, v);
    }
}

pub(crate) struct AddPrefix {
    /// Escaped form of the configured prefix.
    prefix: String,
}

impl AddPrefix {
    pub(crate) fn compile(c: &AddPrefixConfig) -> Result<Self, MiddlewareError> {
        if c.prefix.is_empty() {
            return Err(MiddlewareError::invalid(
                "addPrefix",
                "prefix cannot be empty",
            ));
        }
        Ok(AddPrefix {
            prefix: util::escape_decoded_path(c.prefix.as_bytes()),
        })
    }

    pub(crate) fn on_request(&self, req: &mut http::request::Parts) -> Flow {
        let new = ensure_leading_slash(&format!("{}{}", self.prefix, req.uri.path()));
        set_path(req, &new)
    }
}

pub(crate) struct StripPrefix {
    /// (decoded prefix as configured, `X-Forwarded-Prefix` value)
    prefixes: Vec<(String, HeaderValue)>,
    force_slash: bool,
}

impl StripPrefix {
    pub(crate) fn compile(c: &StripPrefixConfig) -> Result<Self, MiddlewareError> {
        let prefixes = c
            .prefixes
            .iter()
            .map(|p| {
                HeaderValue::from_str(p.trim())
                    .map(|hv| (p.clone(), hv))
                    .map_err(|_| {
                        MiddlewareError::invalid("stripPrefix", format!("invalid prefix {p:?}"))
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(StripPrefix {
            prefixes,
            force_slash: c.force_slash.unwrap_or(true),
        })
    }

    pub(crate) fn on_request(&self, req: &mut http::request::Parts) -> Flow {
        let raw = req.uri.path();
        for (prefix, header) in &self.prefixes {
            let at = util::strip_decoded_prefix(raw, prefix.as_bytes());
            let Some(rest) = at.and_then(|at| raw.get(at..)) else {
                continue;
            };
            let new = if self.force_slash {
                format!("/{}", rest.strip_prefix('/').unwrap_or(rest))
            } else {
                ensure_leading_slash(rest)
            };
            req.headers.append(X_FORWARDED_PREFIX, header.clone());
            return set_path(req, &new);
        }
        Flow::Continue
    }
}

pub(crate) struct StripPrefixRegex {
    regexes: Vec<regex::bytes::Regex>,
}

impl StripPrefixRegex {
    pub(crate) fn compile(c: &StripPrefixRegexConfig) -> Result<Self, MiddlewareError> {
        let regexes = c
            .regex
            .iter()
            .map(|r| util::bytes_regex("stripPrefixRegex", r.trim()))
            .collect::<Result<_, _>>()?;
        Ok(StripPrefixRegex { regexes })
    }

    pub(crate) fn on_request(&self, req: &mut http::request::Parts) -> Flow {
        let raw = req.uri.path().to_owned();
        let decoded = util::percent_decode(&raw);
        for re in &self.regexes {
            let Some(m) = re.find(&decoded) else { continue };
            let prefix = m.as_bytes();
            if prefix.is_empty() || !decoded.starts_with(prefix) {
                continue;
            }
            // A byte-level regex may end inside a UTF-8 sequence of the raw path: no cut there.
            let at = util::raw_index_after_decoded(&raw, prefix.len());
            let Some(rest) = raw.get(at..) else { continue };
            append_bytes(req, X_FORWARDED_PREFIX, prefix);
            return set_path(req, &ensure_leading_slash(rest));
        }
        Flow::Continue
    }
}

pub(crate) struct ReplacePath {
    path: String,
}

impl ReplacePath {
    pub(crate) fn compile(c: &ReplacePathConfig) -> Result<Self, MiddlewareError> {
        let path = util::normalize_raw_path(&c.path).ok_or_else(|| {
            MiddlewareError::invalid(
                "replacePath",
                format!("invalid escape in path {:?}", c.path),
            )
        })?;
        Ok(ReplacePath { path })
    }

    pub(crate) fn on_request(&self, req: &mut http::request::Parts) -> Flow {
        let old = req.uri.path().to_owned();
        // Go sends `URL.RawPath` when the path has non-canonical escapes, else the decoded path.
        let decoded = util::percent_decode(&old);
        let canonical = util::escape_decoded_path(&decoded) == old;
        match HeaderValue::from_bytes(&decoded) {
            Ok(v) if canonical => {
                req.headers.append(X_REPLACED_PATH, v);
            }
            _ => append_bytes(req, X_REPLACED_PATH, old.as_bytes()),
        }
        set_path(req, &self.path)
    }
}

pub(crate) struct ReplacePathRegex {
    regex: Regex,
    replacement: String,
}

impl ReplacePathRegex {
    pub(crate) fn compile(c: &ReplacePathRegexConfig) -> Result<Self, MiddlewareError> {
        Ok(ReplacePathRegex {
            regex: util::regex("replacePathRegex", c.regex.trim())?,
            replacement: c.replacement.trim().to_owned(),
        })
    }

    pub(crate) fn on_request(&self, req: &mut http::request::Parts) -> Flow {
        let old = req.uri.path().to_owned();
        if !self.regex.is_match(&old) {
            return Flow::Continue;
        }
        append_bytes(req, X_REPLACED_PATH, old.as_bytes());
        let replaced = self.regex.replace_all(&old, self.replacement.as_str());
        match util::normalize_raw_path(&replaced) {
            Some(new) => set_path(req, &new),
            None => Flow::Respond(util::go_http_error(
                http::StatusCode::INTERNAL_SERVER_ERROR,
                &format!("invalid URL escape in {replaced:?}"),
            )),
        }
    }
}
