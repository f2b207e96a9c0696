//! The request-side normalisations Traefik applies before matching: the canonical host (Go's
//! `net.SplitHostPort` then lower case), the routing path (percent-decoding all but the reserved
//! octets) and query parsing as Go's `url.ParseQuery` does it. Everything here borrows when the
//! input is already in normal form, so the common request allocates nothing.
//!
//! No matching logic lives here, only views of the request.

use std::borrow::Cow;

/// Lower-case, strip the port (also for `[v6]:port`), strip one trailing dot; as Traefik
/// canonicalises the request host before matching.
///
/// The port is split off exactly as Go's `net.SplitHostPort` does; when that fails the text is
/// kept whole, as Traefik keeps it (a bare `::1` stays `::1`, `[::1]:8080` becomes `::1`), except
/// that a bare bracketed literal loses its brackets: Traefik 3.7 routes `Host: [10::10]` to
/// ``Host(`10::10`)`` (checked against it). Surrounding whitespace is trimmed. Stripping one trailing
/// dot is boma's addition: Traefik's `Host` ignores it too, its `HostRegexp` would not.
pub fn canonical_host(raw: &str) -> Cow<'_, str> {
    let host = split_host(raw).trim();
    let host = (host.strip_prefix('[').and_then(|h| h.strip_suffix(']')))
        .filter(|h| !h.contains(['[', ']']))
        .unwrap_or(host);
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.bytes().any(|b| b.is_ascii_uppercase()) || !host.is_ascii() {
        Cow::Owned(host.to_lowercase())
    } else {
        Cow::Borrowed(host)
    }
}

/// The host part of `host:port` per Go's `net.SplitHostPort`, or the input when that errs.
fn split_host(raw: &str) -> &str {
    // A byte search: `rfind(char)` costs more than the whole of a short host.
    let Some(last_colon) = raw.bytes().rposition(|b| b == b':') else {
        return raw;
    };
    let (host, open_end, close_from) = if raw.starts_with('[') {
        let Some(end) = raw.find(']') else {
            return raw;
        };
        if end + 1 != last_colon {
            return raw;
        }
        (&raw[1..end], 1, end + 1)
    } else {
        let host = &raw[..last_colon];
        if host.contains(':') {
            return raw;
        }
        (host, 0, 0)
    };
    if raw[open_end..].contains('[') || raw[close_from..].contains(']') {
        return raw;
    }
    host
}

/// Reserved octets Traefik keeps percent-encoded in the routing path (matched on upper-case hex).
const RESERVED: [&[u8; 2]; 19] = [
    b"3A", b"2F", b"3F", b"23", b"5B", b"5D", b"40", b"21", b"24", b"26", b"27", b"28", b"29",
    b"2A", b"2B", b"2C", b"3B", b"3D", b"25",
];

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Bytes Go's `url.URL.EscapedPath` accepts verbatim in a raw path (its `validEncoded`).
const VERBATIM: [bool; 256] = {
    let mut t = [false; 256];
    let extra = b"-_.~$&+,/:;=@!'()*[]%";
    let mut c = 0;
    while c < 256 {
        t[c] = (c as u8).is_ascii_alphanumeric();
        c += 1;
    }
    let mut i = 0;
    while i < extra.len() {
        t[extra[i] as usize] = true;
        i += 1;
    }
    t
};

/// The path Traefik's path matchers look at: `raw` with each `%XX` decoded unless it is a reserved
/// octet; `None` when a `%` is not followed by two hex digits (Traefik rejects such requests).
///
/// When `raw` holds a byte Go would have escaped (`{`, `|`, a space, non-ASCII...), Go rebuilds the
/// escaped path from the decoded one, and so does this: every octet is decoded, then `?#[]!'()*%`
/// come back as upper-case `%XX`.
pub(crate) fn routing_path(raw: &str) -> Option<Cow<'_, [u8]>> {
    let b = raw.as_bytes();
    let mut percent = false;
    for &c in b {
        if !VERBATIM[usize::from(c)] {
            return rebuilt_path(b).map(Cow::Owned);
        }
        percent |= c == b'%';
    }
    if !percent {
        return Some(Cow::Borrowed(b));
    }
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'%' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let (h, l) = (*b.get(i + 1)?, *b.get(i + 2)?);
        let v = hex(h)? << 4 | hex(l)?;
        if RESERVED.iter().any(|r| r[0] == h && r[1] == l) {
            out.extend_from_slice(&b[i..i + 3]);
        } else {
            out.push(v);
        }
        i += 3;
    }
    Some(Cow::Owned(out))
}

/// Go's fallback when the raw path is not in its escaped form: decode every octet, re-escape.
fn rebuilt_path(b: &[u8]) -> Option<Vec<u8>> {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let c = if b[i] == b'%' {
            let v = hex(*b.get(i + 1)?)? << 4 | hex(*b.get(i + 2)?)?;
            i += 3;
            v
        } else {
            i += 1;
            b[i - 1]
        };
        // Of the octets Go re-escapes, these are the reserved ones the routing path keeps.
        if b"?#[]!'()*%".contains(&c) {
            out.extend_from_slice(&[b'%', HEX[usize::from(c >> 4)], HEX[usize::from(c & 15)]]);
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// The `key=value` pairs of a raw query, still encoded, as Go's `url.ParseQuery` splits them:
/// on `&`, skipping empty pairs and pairs that contain `;`. A pair without `=` has value `""`.
pub(crate) fn query_pairs(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query
        .split('&')
        .filter(|p| !p.is_empty() && !p.contains(';'))
        .map(|p| p.split_once('=').unwrap_or((p, "")))
}

/// Whether the query-decoded form of `raw` (`+` is a space) equals `want`; `None` when `raw` is
/// not validly encoded (Go drops such pairs). Does not allocate.
pub(crate) fn query_eq(raw: &str, want: &[u8]) -> Option<bool> {
    let b = raw.as_bytes();
    let mut i = 0;
    let mut j = 0;
    let mut equal = true;
    while i < b.len() {
        let v = match b[i] {
            b'%' => {
                let v = hex(*b.get(i + 1)?)? << 4 | hex(*b.get(i + 2)?)?;
                i += 3;
                v
            }
            b'+' => {
                i += 1;
                b' '
            }
            c => {
                i += 1;
                c
            }
        };
        if equal && want.get(j) != Some(&v) {
            equal = false;
        }
        j += 1;
    }
    Some(equal && j == want.len())
}

/// The query-decoded form of `raw` as text, or `None` when not validly encoded. Borrows unless
/// `raw` contains `%` or `+`. Invalid UTF-8 after decoding becomes U+FFFD, as Go's regexp reads it.
pub(crate) fn query_decode(raw: &str) -> Option<Cow<'_, str>> {
    let b = raw.as_bytes();
    if !b.iter().any(|&c| c == b'%' || c == b'+') {
        return Some(Cow::Borrowed(raw));
    }
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                out.push(hex(*b.get(i + 1)?)? << 4 | hex(*b.get(i + 2)?)?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Some(match String::from_utf8(out) {
        Ok(s) => Cow::Owned(s),
        Err(e) => Cow::Owned(String::from_utf8_lossy(e.as_bytes()).into_owned()),
    })
}

/// Bytes as text for a regexp: borrowed when valid UTF-8, else lossy (U+FFFD), as Go reads them.
pub(crate) fn text(b: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(b)
}
