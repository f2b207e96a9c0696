//! The server half of boma's HTTP/1.1 codec: request heads parsed (httparse) into `http` parts,
//! response heads encoded, for the entrypoint's own HTTP/1.1 server (`entrypoint::h1`).
//!
//! Only the common case is taken: an HTTP/1.1 request without a body, upgrade or expectation.
//! Anything else ([`Parsed::Handover`]: a body, `Upgrade`, `Expect`, HTTP/1.0, CONNECT, the h2
//! preface, a head hyper would refuse) goes to hyper with every byte read so far, so that there
//! is one implementation of each of those rules and hyper's answers to bad requests (400, 431,
//! 414) stay what they were.
//!
//! Response heads follow what hyper's server writes (its `role::Server::encode`): lower-case
//! names, the length taken from `content-length` or the body's exact size, chunked otherwise,
//! no body for HEAD, 1xx, 204 and 304 (HEAD keeps its `content-length`), `connection: close`
//! added when the connection ends after the answer, a cached `date`. One difference: the status
//! line is always HTTP/1.1 (the version of the request it answers), where hyper repeated an
//! HTTP/1.0 upstream's version and then ended the body with the close; nginx and Traefik answer
//! in their own version too.

use std::cell::RefCell;
use std::mem::MaybeUninit;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, Uri, Version, request, response};

/// Most header fields in a request head (hyper's default, so that hyper refuses the same).
pub const MAX_HEADERS: usize = 100;
/// Longest request target taken (hyper's limit; longer ones get hyper's 414).
const MAX_URI: usize = u16::MAX as usize - 1;

/// What the bytes at the start of the read buffer are.
#[derive(Debug)]
// Made once per request and moved straight out: boxing the head would cost an allocation.
#[allow(clippy::large_enum_variant)]
pub enum Parsed {
    /// A bodyless HTTP/1.1 request, consumed from the buffer; `close`: the client asked for the
    /// connection to end after the answer; `trailers`: it accepts trailer fields (`TE:
    /// trailers`), without which none are sent, as with hyper.
    Request {
        parts: request::Parts,
        close: bool,
        trailers: bool,
    },
    /// Not a whole head yet.
    Partial,
    /// Not for this server: hyper serves the connection from here, with the buffer unread.
    Handover,
}

/// Parse the request head at the start of `buf`, consuming it when it is taken.
pub fn parse_request(buf: &mut BytesMut) -> Parsed {
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, &mut slots) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Handover,
    };
    let (Some(method), Some(target), Some(1)) = (req.method, req.path, req.version) else {
        return Parsed::Handover;
    };
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return Parsed::Handover;
    };
    if method == Method::CONNECT || target.len() > MAX_URI {
        return Parsed::Handover;
    }
    // Where the target and each field lie in the head, so that they share its bytes.
    let target_at = target.as_ptr() as usize - buf.as_ptr() as usize;
    let target_len = target.len();
    let mut places = super::Places::<MAX_HEADERS>::new();
    super::field_places(buf, req.headers, &mut places);
    let head = buf.split_to(len).freeze();
    let Ok(uri) = Uri::from_maybe_shared(head.slice(target_at..target_at + target_len)) else {
        // Put back for hyper, which answers 400.
        return handover_with(buf, head);
    };
    // Room for the X-Forwarded-* fields the proxy adds, so that they need no second allocation.
    let mut headers = super::spare::take(places.len() + 8);
    let mut close = false;
    let mut trailers = false;
    for &place in &places {
        let Some((name, value)) = super::shared_field(&head, place) else {
            return handover_with(buf, head);
        };
        match name {
            // A body, an upgrade or an expectation: hyper's business.
            header::TRANSFER_ENCODING | header::UPGRADE | header::EXPECT => {
                return handover_with(buf, head);
            }
            header::CONTENT_LENGTH if value != "0" || headers.contains_key(&name) => {
                return handover_with(buf, head);
            }
            header::CONNECTION => close |= has_token(&value, b"close"),
            header::TE => trailers |= has_token(&value, b"trailers"),
            _ => {}
        }
        headers.append(name, value);
    }
    let mut parts = request::Request::new(()).into_parts().0;
    parts.method = method;
    parts.uri = uri;
    parts.version = Version::HTTP_11;
    parts.headers = headers;
    Parsed::Request {
        parts,
        close,
        trailers,
    }
}

/// Where the head that `buf` begins with ends (just past its empty line), looking only from
/// `from` on (bytes before it were looked at already): a head is parsed once it is whole, not
/// again on every read of a client that sends it a byte at a time.
pub fn head_end(buf: &[u8], from: usize) -> Option<usize> {
    let start = from.saturating_sub(2);
    let at = buf[start..]
        .iter()
        .position(|b| *b == b'\n')
        .map(|i| i + start)?;
    let mut at = at;
    loop {
        // A line feed followed by an optional CR and another line feed ends the head.
        match buf.get(at + 1..) {
            Some([b'\n', ..]) => return Some(at + 2),
            Some([b'\r', b'\n', ..]) => return Some(at + 3),
            _ => {}
        }
        at += 1 + buf.get(at + 1..)?.iter().position(|b| *b == b'\n')?;
    }
}

/// Put a consumed head back in front of the buffer and hand the connection over.
fn handover_with(buf: &mut BytesMut, head: bytes::Bytes) -> Parsed {
    let mut whole = BytesMut::with_capacity(head.len() + buf.len());
    whole.extend_from_slice(&head);
    whole.extend_from_slice(buf);
    *buf = whole;
    Parsed::Handover
}

/// `value` is a comma-separated list holding `token` (ASCII case ignored).
pub fn has_token(value: &HeaderValue, token: &[u8]) -> bool {
    (value.as_bytes().split(|b| *b == b',')).any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

/// What the response body is, as far as its framing goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyLen {
    /// Ended already.
    Empty,
    /// Exactly this many bytes.
    Known(u64),
    Unknown,
}

/// How the body is written after the head.
#[derive(Debug, PartialEq, Eq)]
pub enum Framing {
    /// Exactly this many bytes (0: none; the body is not read).
    Length(u64),
    /// Chunked, with the trailer fields the `trailer` header announced (others are dropped).
    Chunked(Vec<HeaderName>),
}

/// An encoded head: how its body goes and whether the connection ends after it.
#[derive(Debug, PartialEq, Eq)]
pub struct Encoded {
    pub framing: Framing,
    pub close: bool,
}

/// A response head hyper would refuse to write (it closes the connection without an answer).
#[derive(Debug, PartialEq, Eq)]
pub struct BadHead(pub &'static str);

/// The answer to encode: its head, and its fields when they were passed on from the server's
/// head as lines (then the head's map holds none of them).
pub struct Answer {
    pub parts: response::Parts,
    pub passed: Option<super::Passed>,
}

/// Encode the head of the answer to a request (`head`: a HEAD request) into `dst`; `close`:
/// the connection ends after it (the client asked, or the entrypoint is draining).
pub fn encode_response(
    dst: &mut Vec<u8>,
    answer: Answer,
    head: bool,
    mut body: BodyLen,
    mut close: bool,
) -> Result<Encoded, BadHead> {
    let Answer {
        mut parts,
        mut passed,
    } = answer;
    let start = dst.len();
    let mut status = parts.status;
    if status.is_informational() && status != StatusCode::SWITCHING_PROTOCOLS {
        // As hyper: a 1xx cannot be the answer; a 500 with nothing else, then the close.
        status = StatusCode::INTERNAL_SERVER_ERROR;
        parts.headers.clear();
        parts.extensions.clear();
        passed = None;
        body = BodyLen::Empty;
        close = true;
    }
    if status == StatusCode::SWITCHING_PROTOCOLS {
        close = true;
    }
    status_line(dst, status, &parts.extensions);
    let headers = &parts.headers;
    let can_body = !(head || status.is_informational())
        && status != StatusCode::NO_CONTENT
        && status != StatusCode::NOT_MODIFIED;
    let can_length = !status.is_informational()
        && status != StatusCode::NO_CONTENT
        && status != StatusCode::NOT_MODIFIED;
    let present = write_fields(dst, headers, passed);
    let (mut framing, wrote_len) = if present.length || present.codings {
        match explicit_length(dst, headers, head, body, can_body) {
            Ok(x) => x,
            Err(e) => {
                dst.truncate(start);
                return Err(e);
            }
        }
    } else {
        (Framing::Length(0), false)
    };
    let said_close = present.connection
        && joined(dst, headers, &header::CONNECTION, |v| {
            has_token(v, b"close")
        });
    close |= said_close;
    if close && !said_close && status != StatusCode::SWITCHING_PROTOCOLS {
        // hyper: a connection that ends after this answer says so (HTTP/1.1).
        field(dst, "connection", b"close");
    }
    let trailers = match can_body && present.trailer {
        true => announced_trailers(dst, headers),
        false => Vec::new(),
    };
    if !wrote_len {
        framing = implicit_framing(dst, body, can_body, can_length && !head, can_length);
    }
    if !can_body {
        framing = Framing::Length(0);
    }
    if let Framing::Chunked(allowed) = &mut framing {
        *allowed = trailers;
    }
    if !present.date {
        dst.extend_from_slice(b"date: ");
        extend_date(dst);
        dst.extend_from_slice(b"\r\n");
    }
    dst.extend_from_slice(b"\r\n");
    // Written: the map serves the next head this thread parses.
    super::spare::give(parts.headers);
    Ok(Encoded { framing, close })
}

/// The answer's own fields: those of its map but framing ones (see [`copy_fields`]), or the
/// lines passed on from its server's head (which hold no framing or hop-by-hop field).
fn write_fields(dst: &mut Vec<u8>, headers: &HeaderMap, passed: Option<super::Passed>) -> Present {
    let mut present = copy_fields(dst, headers);
    if let Some(passed) = passed {
        dst.extend_from_slice(&passed.lines);
        present.date |= passed.date;
        super::spare::give_lines(passed.lines);
    }
    present
}

/// The Trailer field, written, and the names it announces.
fn announced_trailers(dst: &mut Vec<u8>, headers: &HeaderMap) -> Vec<HeaderName> {
    let mut trailers = Vec::new();
    joined(dst, headers, &header::TRAILER, |v| {
        let names = v.as_bytes().split(|b| *b == b',');
        let parsed = names.filter_map(|n| HeaderName::from_bytes(n.trim_ascii()).ok());
        trailers.extend(parsed);
        false
    });
    trailers
}

/// Which of the fields that [`copy_fields`] leaves to [`encode_response`] an answer has (so
/// that only those present are looked up).
#[derive(Default)]
struct Present {
    length: bool,
    codings: bool,
    connection: bool,
    trailer: bool,
    date: bool,
}

/// The answer's fields but those whose framing or connection meaning is written here, and
/// which of those it has.
fn copy_fields(dst: &mut Vec<u8>, headers: &HeaderMap) -> Present {
    let mut present = Present::default();
    for (name, value) in headers {
        let seen = match *name {
            header::CONTENT_LENGTH => &mut present.length,
            header::TRANSFER_ENCODING => &mut present.codings,
            header::CONNECTION => &mut present.connection,
            header::TRAILER => &mut present.trailer,
            header::DATE => {
                present.date = true;
                field(dst, name.as_str(), value.as_bytes());
                continue;
            }
            _ => {
                field(dst, name.as_str(), value.as_bytes());
                continue;
            }
        };
        *seen = true;
    }
    present
}

/// The framing of an answer whose own fields gave no length, and the field that says it:
/// chunked when the length is unknown and a body may follow; none for an unknown length where
/// no body may follow; else a content-length (for an empty body when `zero_length` allows it,
/// for a known one when `length` does).
fn implicit_framing(
    dst: &mut Vec<u8>,
    body: BodyLen,
    can_body: bool,
    zero_length: bool,
    length: bool,
) -> Framing {
    match body {
        BodyLen::Unknown if can_body => {
            field(dst, "transfer-encoding", b"chunked");
            Framing::Chunked(Vec::new())
        }
        BodyLen::Unknown => Framing::Length(0),
        BodyLen::Empty | BodyLen::Known(0) => {
            if zero_length {
                field(dst, "content-length", b"0");
            }
            Framing::Length(0)
        }
        BodyLen::Known(n) => {
            if length {
                field(dst, "content-length", decimal(n).as_slice());
            }
            Framing::Length(n)
        }
    }
}

/// The status line; a reason phrase the server gave (kept by hyper's client) is repeated.
fn status_line(dst: &mut Vec<u8>, status: StatusCode, ext: &http::Extensions) {
    let custom = ext.get::<hyper::ext::ReasonPhrase>();
    if status == StatusCode::OK && custom.is_none() {
        dst.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        return;
    }
    dst.extend_from_slice(b"HTTP/1.1 ");
    dst.extend_from_slice(status.as_str().as_bytes());
    dst.push(b' ');
    match custom {
        Some(reason) => dst.extend_from_slice(reason.as_bytes()),
        None => dst.extend_from_slice(status.canonical_reason().unwrap_or("<none>").as_bytes()),
    }
    dst.extend_from_slice(b"\r\n");
}

/// The `content-length` / `transfer-encoding` the answer carries, as hyper reads them: the
/// framing and whether one was written.
fn explicit_length(
    dst: &mut Vec<u8>,
    headers: &HeaderMap,
    head: bool,
    body: BodyLen,
    can_body: bool,
) -> Result<(Framing, bool), BadHead> {
    let mut lengths = headers.get_all(header::CONTENT_LENGTH).iter();
    let mut framing = Framing::Length(0);
    let mut wrote_len = false;
    if let Some(first) = lengths.next() {
        match body {
            BodyLen::Known(n) => {
                framing = Framing::Length(n);
                wrote_len = true;
            }
            BodyLen::Unknown => {
                // Digits only, as hyper reads it (no sign, no spaces).
                let parse = |v: &HeaderValue| {
                    let digits = v.as_bytes();
                    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                        return None;
                    }
                    std::str::from_utf8(digits).ok()?.parse::<u64>().ok()
                };
                let n = parse(first).ok_or(BadHead("invalid content-length"))?;
                if lengths.any(|v| parse(v) != Some(n)) {
                    return Err(BadHead("differing content-length values"));
                }
                framing = Framing::Length(n);
                wrote_len = true;
            }
            // No body: the length stays only on the answer to a HEAD.
            BodyLen::Empty => wrote_len = head,
        }
        if wrote_len {
            field(dst, "content-length", first.as_bytes());
        }
    }
    let mut codings = headers.get_all(header::TRANSFER_ENCODING).iter().peekable();
    if can_body && codings.peek().is_some() {
        if wrote_len {
            return Err(BadHead("both content-length and transfer-encoding"));
        }
        dst.extend_from_slice(b"transfer-encoding: ");
        let mut last_chunked = false;
        for (i, v) in codings.enumerate() {
            if i > 0 {
                dst.extend_from_slice(b", ");
            }
            dst.extend_from_slice(v.as_bytes());
            last_chunked = (v.as_bytes().rsplit(|b| *b == b',').next())
                .is_some_and(|t| t.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        }
        if !last_chunked {
            dst.extend_from_slice(b", chunked");
        }
        dst.extend_from_slice(b"\r\n");
        return Ok((Framing::Chunked(Vec::new()), true));
    }
    Ok((framing, wrote_len))
}

/// Write all values of `name` on one line, joined by commas; true when `seen` held for one.
fn joined(
    dst: &mut Vec<u8>,
    headers: &HeaderMap,
    name: &HeaderName,
    mut seen: impl FnMut(&HeaderValue) -> bool,
) -> bool {
    let mut any = false;
    let mut hit = false;
    for v in headers.get_all(name) {
        dst.extend_from_slice(if any { b", " } else { b"" });
        if !any {
            dst.extend_from_slice(name.as_str().as_bytes());
            dst.extend_from_slice(b": ");
        }
        dst.extend_from_slice(v.as_bytes());
        hit |= seen(v);
        any = true;
    }
    if any {
        dst.extend_from_slice(b"\r\n");
    }
    hit
}

fn field(dst: &mut Vec<u8>, name: &str, value: &[u8]) {
    dst.extend_from_slice(name.as_bytes());
    dst.extend_from_slice(b": ");
    dst.extend_from_slice(value);
    dst.extend_from_slice(b"\r\n");
}

/// A number in decimal, without allocating.
fn decimal(mut n: u64) -> Digits {
    let mut d = Digits {
        buf: [0; 20],
        at: 20,
    };
    loop {
        d.at -= 1;
        d.buf[d.at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return d;
        }
    }
}

struct Digits {
    buf: [u8; 20],
    at: usize,
}

impl Digits {
    fn as_slice(&self) -> &[u8] {
        &self.buf[self.at..]
    }
}

/// The chunk-size line of a chunk of `len` bytes.
pub fn chunk_line(dst: &mut Vec<u8>, len: usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [0u8; 16];
    let mut at = buf.len();
    let mut n = len;
    loop {
        at -= 1;
        buf[at] = HEX[n & 15];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    dst.extend_from_slice(&buf[at..]);
    dst.extend_from_slice(b"\r\n");
}

/// The end of a chunked body, with the trailer fields that were announced.
pub fn chunked_end(dst: &mut Vec<u8>, trailers: Option<&HeaderMap>, allowed: &[HeaderName]) {
    dst.extend_from_slice(b"0\r\n");
    for (name, value) in trailers.into_iter().flatten() {
        if allowed.contains(name) && may_trail(name) {
            field(dst, name.as_str(), value.as_bytes());
        }
    }
    dst.extend_from_slice(b"\r\n");
}

/// Fields that cannot be trailers (hyper's list): framing, routing, authentication and the
/// fields a recipient needs before the body.
fn may_trail(name: &HeaderName) -> bool {
    !matches!(
        *name,
        header::AUTHORIZATION
            | header::CACHE_CONTROL
            | header::CONTENT_ENCODING
            | header::CONTENT_LENGTH
            | header::CONTENT_RANGE
            | header::CONTENT_TYPE
            | header::HOST
            | header::MAX_FORWARDS
            | header::SET_COOKIE
            | header::TRAILER
            | header::TRANSFER_ENCODING
            | header::TE
    )
}

thread_local! {
    /// The `date` value of the current second (formatted once a second per thread, as hyper).
    static DATE: RefCell<(u64, [u8; 29])> = const { RefCell::new((u64::MAX, [0; 29])) };
}

/// The current time as an HTTP date (IMF-fixdate).
fn extend_date(dst: &mut Vec<u8>) {
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with_borrow_mut(|(at, text)| {
        if *at != secs {
            let s = httpdate::fmt_http_date(now);
            if s.len() == text.len() {
                text.copy_from_slice(s.as_bytes());
                *at = secs;
            }
        }
        dst.extend_from_slice(text);
    });
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;
