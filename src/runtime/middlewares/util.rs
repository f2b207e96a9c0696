//! Small helpers shared by the middleware families: lenient serde readers for values that arrive
//! either typed (TOML files) or as strings (container labels), Go-compatible durations, percent
//! coding of URL paths, rebuilding a request URI, and plain-text responses.
//!
//! Nothing here keeps state or reads the clock; every function is total on hostile input.

use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, X_CONTENT_TYPE_OPTIONS};
use http::{Response, StatusCode, Uri};
use serde::de::{self, Deserializer, SeqAccess, Visitor};

// ---------------------------------------------------------------------------------------------
// Lenient serde readers
// ---------------------------------------------------------------------------------------------

/// A list of strings: a sequence, or one string split on `,` (the label form, as Traefik does).
pub(crate) fn str_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a list of strings or a comma-separated string")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            if v.is_empty() {
                return Ok(Vec::new());
            }
            // Traefik trims the items of a comma-separated label value.
            Ok(v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(s) = seq.next_element::<ScalarString>()? {
                out.push(s.0);
            }
            Ok(out)
        }
    }
    d.deserialize_any(V)
}

/// A string that may also be written as a number or a boolean (`port = 443`).
pub(crate) struct ScalarString(pub(crate) String);

impl<'de> serde::Deserialize<'de> for ScalarString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ScalarString;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a number")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(ScalarString(v.to_owned()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(ScalarString(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(ScalarString(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(ScalarString(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

pub(crate) fn scalar_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    <ScalarString as serde::Deserialize>::deserialize(d).map(|s| s.0)
}

/// An integer, also accepted as a decimal string.
pub(crate) fn int<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = i64;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an integer")
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
            Ok(v)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
            i64::try_from(v).map_err(|_| E::custom("integer out of range"))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<i64, E> {
            v.trim()
                .parse()
                .map_err(|_| E::custom(format!("invalid integer {v:?}")))
        }
    }
    d.deserialize_any(V)
}

pub(crate) fn opt_int<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    int(d).map(Some)
}

/// A boolean, also accepted as `"true"`/`"false"` (any case).
pub(crate) fn boolean<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = bool;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a boolean")
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<bool, E> {
            Ok(v)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
            match v.trim().to_ascii_lowercase().as_str() {
                "true" => Ok(true),
                "false" | "" => Ok(false),
                _ => Err(E::custom(format!("invalid boolean {v:?}"))),
            }
        }
    }
    d.deserialize_any(V)
}

pub(crate) fn opt_boolean<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    boolean(d).map(Some)
}

/// A Go-style duration (Traefik's `ptypes.Duration`), kept as signed nanoseconds so that a
/// negative value can be reported by `compile` instead of failing the whole file.
/// Accepted forms: an integer (seconds), a string of an integer (seconds), or a Go duration
/// string such as `"1m30s"`, `"250ms"`, `"1.5h"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GoDuration(pub i64);

impl<'de> serde::Deserialize<'de> for GoDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = GoDuration;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration (seconds, or a string like \"1m30s\")")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<GoDuration, E> {
                v.checked_mul(1_000_000_000)
                    .map(GoDuration)
                    .ok_or_else(|| E::custom("duration out of range"))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<GoDuration, E> {
                let v = i64::try_from(v).map_err(|_| E::custom("duration out of range"))?;
                self.visit_i64(v)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<GoDuration, E> {
                let ns = v * 1e9;
                if ns.is_finite() && ns.abs() < 9.2e18 {
                    Ok(GoDuration(ns as i64))
                } else {
                    Err(E::custom("duration out of range"))
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<GoDuration, E> {
                parse_go_duration(v)
                    .map(GoDuration)
                    .ok_or_else(|| E::custom(format!("invalid duration {v:?}")))
            }
        }
        d.deserialize_any(V)
    }
}

/// Parses `"10"` (seconds) or a Go `time.ParseDuration` string into nanoseconds.
pub(crate) fn parse_go_duration(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<i64>() {
        return secs.checked_mul(1_000_000_000);
    }
    let (neg, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(num_end);
        if num.is_empty() || num == "." {
            return None;
        }
        let value: f64 = num.parse().ok()?;
        let unit_end = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_end);
        let scale = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += value * scale;
        rest = tail;
    }
    if !total.is_finite() || total > 9.2e18 {
        return None;
    }
    let ns = total as i64;
    Some(if neg { -ns } else { ns })
}

/// Formats a duration the way Go's `time.Duration.String` does (`"1.5s"`, `"500ms"`, `"2m0s"`).
pub(crate) fn format_go_duration(d: std::time::Duration) -> String {
    let ns = d.as_nanos();
    if ns == 0 {
        return "0s".to_owned();
    }
    fn frac(int: u128, rem: u128, digits: u32) -> String {
        let mut s = int.to_string();
        if rem != 0 {
            let f = format!("{:0width$}", rem, width = digits as usize);
            s.push('.');
            s.push_str(f.trim_end_matches('0'));
        }
        s
    }
    if ns < 1_000 {
        return format!("{ns}ns");
    }
    if ns < 1_000_000 {
        return format!("{}µs", frac(ns / 1_000, ns % 1_000, 3));
    }
    if ns < 1_000_000_000 {
        return format!("{}ms", frac(ns / 1_000_000, ns % 1_000_000, 6));
    }
    let secs = ns / 1_000_000_000;
    let sub = ns % 1_000_000_000;
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    out.push_str(&frac(s, sub, 9));
    out.push('s');
    out
}

// ---------------------------------------------------------------------------------------------
// Percent coding of paths
// ---------------------------------------------------------------------------------------------

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The byte encoded at `raw[i..]` and how many raw bytes it takes: `%XX` decodes, anything else
/// (including a malformed `%`) stands for itself.
fn decode_at(raw: &[u8], i: usize) -> (u8, usize) {
    if raw[i] == b'%'
        && i + 2 < raw.len()
        && let (Some(h), Some(l)) = (hex_val(raw[i + 1]), hex_val(raw[i + 2]))
    {
        return ((h << 4) | l, 3);
    }
    (raw[i], 1)
}

/// Decodes `%XX` escapes; malformed escapes are kept literally. Borrows when nothing is escaped.
pub(crate) fn percent_decode(raw: &str) -> Cow<'_, [u8]> {
    let bytes = raw.as_bytes();
    if !bytes.contains(&b'%') {
        return Cow::Borrowed(bytes);
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let (b, n) = decode_at(bytes, i);
        out.push(b);
        i += n;
    }
    Cow::Owned(out)
}

/// If the decoded form of `raw` starts with `prefix`, the index in `raw` where the rest begins.
pub(crate) fn strip_decoded_prefix(raw: &str, prefix: &[u8]) -> Option<usize> {
    let bytes = raw.as_bytes();
    let (mut i, mut j) = (0, 0);
    while j < prefix.len() {
        if i >= bytes.len() {
            return None;
        }
        let (b, n) = decode_at(bytes, i);
        if b != prefix[j] {
            return None;
        }
        i += n;
        j += 1;
    }
    Some(i)
}

/// The index in `raw` after its first `n` decoded bytes (clamped to the end).
pub(crate) fn raw_index_after_decoded(raw: &str, n: usize) -> usize {
    let bytes = raw.as_bytes();
    let (mut i, mut j) = (0, 0);
    while j < n && i < bytes.len() {
        i += decode_at(bytes, i).1;
        j += 1;
    }
    i
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn push_escaped(out: &mut String, b: u8) {
    out.push('%');
    out.push(HEX[(b >> 4) as usize] as char);
    out.push(HEX[(b & 15) as usize] as char);
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~')
}

/// Escapes a decoded path as Go's `url.PathEscape`-for-paths does (`encodePath`): unreserved
/// bytes and `$&+,/:;=@` stay, everything else (including `%`) becomes `%XX`.
pub(crate) fn escape_decoded_path(s: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s {
        if is_unreserved(b)
            || matches!(
                b,
                b'$' | b'&' | b'+' | b',' | b'/' | b':' | b';' | b'=' | b'@'
            )
        {
            out.push(b as char);
        } else {
            push_escaped(&mut out, b);
        }
    }
    out
}

/// Makes an already-escaped path safe to put on the wire: valid `%XX` escapes and the bytes
/// RFC 3986 allows in a path stay, other bytes are escaped. `None` if a `%` is malformed
/// (Traefik answers 500 in that case).
pub(crate) fn normalize_raw_path(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let ok = i + 2 < bytes.len()
                && hex_val(bytes[i + 1]).is_some()
                && hex_val(bytes[i + 2]).is_some();
            if !ok {
                return None;
            }
            out.push_str(&s[i..i + 3]);
            i += 3;
            continue;
        }
        if is_unreserved(b) || b"!$&'()*+,;=:@/[]".contains(&b) {
            out.push(b as char);
        } else {
            push_escaped(&mut out, b);
        }
        i += 1;
    }
    Some(out)
}

/// Escapes the bytes that may not appear in a `Location` header URL (controls, space, non-ASCII
/// and the characters RFC 3986 never allows), keeping everything else, `%` included.
pub(crate) fn escape_url_unsafe(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b <= b' ' || b >= 0x7f || b"\"<>\\^`{|}".contains(&b) {
            push_escaped(&mut out, b);
        } else {
            out.push(b as char);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Request URI and responses
// ---------------------------------------------------------------------------------------------

/// Replaces the path of `uri` with `raw_path` (already escaped), keeping scheme, authority and
/// query. An empty path becomes `/` (HTTP has no empty origin-form path). `None` if the result
/// is not a valid URI.
pub(crate) fn with_path(uri: &Uri, raw_path: &str) -> Option<Uri> {
    let path = if raw_path.is_empty() { "/" } else { raw_path };
    let pq = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_owned(),
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(pq.parse().ok()?);
    Uri::from_parts(parts).ok()
}

/// The request host as Go's `req.Host` sees it: the URI authority (HTTP/2, absolute-form),
/// else the `Host` header.
pub(crate) fn request_host(req: &http::request::Parts) -> Option<&str> {
    match req.uri.authority() {
        Some(a) => Some(a.as_str()),
        None => req
            .headers
            .get(http::header::HOST)
            .and_then(|v| std::str::from_utf8(v.as_bytes()).ok()),
    }
}

/// Sets the request host (Go's `req.Host`): the `Host` header, and the URI authority when the
/// URI carries one (left alone if `host` is not a valid authority).
pub(crate) fn set_request_host(req: &mut http::request::Parts, host: &HeaderValue) {
    req.headers.insert(http::header::HOST, host.clone());
    if req.uri.authority().is_none() {
        return;
    }
    let Ok(authority) = http::uri::Authority::try_from(host.as_bytes()) else {
        return;
    };
    let mut parts = req.uri.clone().into_parts();
    parts.authority = Some(authority);
    if let Ok(uri) = Uri::from_parts(parts) {
        req.uri = uri;
    }
}

/// A short plain-text response (`text/plain; charset=utf-8`), like Go's `http.Error` without
/// the trailing newline unless the body has one.
pub(crate) fn text_response(status: StatusCode, body: impl Into<Bytes>) -> Response<Bytes> {
    let body = body.into();
    let len = body.len();
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(CONTENT_LENGTH, HeaderValue::from(len));
    resp
}

/// Go's `http.Error`: text body plus newline, `nosniff`.
pub(crate) fn go_http_error(status: StatusCode, msg: &str) -> Response<Bytes> {
    let mut resp = text_response(status, format!("{msg}\n"));
    resp.headers_mut()
        .insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    resp
}

/// The reason phrase Go's `http.StatusText` gives, used as the body of short answers (Go
/// keeps RFC 2616's names where RFC 9110 renamed them).
pub fn status_text(status: StatusCode) -> &'static str {
    match status.as_u16() {
        413 => "Request Entity Too Large",
        414 => "Request URI Too Long",
        416 => "Requested Range Not Satisfiable",
        _ => status.canonical_reason().unwrap_or(""),
    }
}

/// Rewrites the request path (already escaped); answers 500 if no valid URI results.
pub(crate) fn set_path(req: &mut http::request::Parts, raw_path: &str) -> super::Flow {
    match with_path(&req.uri, raw_path) {
        Some(uri) => {
            req.uri = uri;
            super::Flow::Continue
        }
        None => super::Flow::Respond(go_http_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            status_text(StatusCode::INTERNAL_SERVER_ERROR),
        )),
    }
}

/// Compiles a Go-syntax (RE2) regular expression (translated to Rust's syntax, so `\d`, `\w`
/// and friends mean what they mean in Traefik) with a memory bound.
pub(crate) fn regex(
    kind: &'static str,
    pattern: &str,
) -> Result<regex::Regex, super::MiddlewareError> {
    crate::rule::goregex::compile_go(pattern).map_err(|why| super::MiddlewareError::Regex {
        kind,
        pattern: pattern.to_owned(),
        why,
    })
}

/// Same as [`regex()`], matching bytes (decoded paths need not be UTF-8).
pub(crate) fn bytes_regex(
    kind: &'static str,
    pattern: &str,
) -> Result<regex::bytes::Regex, super::MiddlewareError> {
    let fail = |why: String| super::MiddlewareError::Regex {
        kind,
        pattern: pattern.to_owned(),
        why,
    };
    let rust = crate::rule::goregex::translate(pattern).map_err(fail)?;
    regex::bytes::RegexBuilder::new(&rust)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| fail(e.to_string()))
}
