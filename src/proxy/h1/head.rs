//! Response heads as boma's HTTP/1 client reads them: parsed (httparse) into the status, the
//! facts of the framing fields ([`Said`]) and the fields themselves, either in an `http` map or,
//! when nothing between the server and the client reads them, as the lines the client will be
//! sent ([`Passed`]): no field name made, no value checked twice, no map built and emptied.
//!
//! Both forms hold the same fields. Passed lines leave out what the proxy would strip from the
//! map (hop-by-hop fields, RFC 9110 §7.6.1) and what the server side writes itself (framing);
//! names are lower case, as the map's are. httparse accepts exactly the name and value bytes
//! `http` does, so neither form takes a field the other refuses.

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, Version};

use super::{MAX_HEADERS, spare};

/// The parts of a response head the proxy uses.
pub(super) struct ResponseHead {
    pub(super) status: StatusCode,
    pub(super) version: Version,
    /// The fields, unless they are passed on (then empty).
    pub(super) headers: HeaderMap,
    /// What its framing fields say, noted as they are parsed (no lookup afterwards).
    pub(super) said: Said,
    pub(super) passed: Option<Passed>,
}

/// A server's fields passed on to the client as they came: the lines to write after the status
/// line, and whether a Date is among them.
#[derive(Debug)]
pub struct Passed {
    pub lines: Vec<u8>,
    pub date: bool,
}

/// What a response head's framing fields say.
pub(super) struct Said {
    /// A Transfer-Encoding field is present.
    pub(super) transfer_encoding: bool,
    /// Whether the last coding named over every Transfer-Encoding field is chunked (`None`
    /// when they name none).
    chunked_last: Option<bool>,
    /// The Content-Length: absent, a value, or why it is unusable.
    length: Result<Option<u64>, &'static str>,
    /// Connection names `close`.
    pub(super) close: bool,
    /// Connection names more than `close` and `keep-alive`: other fields are hop-by-hop too.
    more: bool,
}

impl Default for Said {
    fn default() -> Self {
        Said {
            transfer_encoding: false,
            chunked_last: None,
            length: Ok(None),
            close: false,
            more: false,
        }
    }
}

impl Said {
    /// Take in one field (its name in any case).
    fn note(&mut self, name: &[u8], value: &[u8]) {
        if is_named(name, b"transfer-encoding") {
            self.transfer_encoding = true;
            if let Some(last) = (value.split(|b| *b == b',')).rfind(|t| !t.trim_ascii().is_empty())
            {
                self.chunked_last = Some(last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            }
        } else if is_named(name, b"content-length") {
            self.length = content_length(self.length, value);
        } else if is_named(name, b"connection") {
            for token in value.split(|b| *b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    self.close = true;
                } else if !token.is_empty() && !token.eq_ignore_ascii_case(b"keep-alive") {
                    self.more = true;
                }
            }
        }
    }
}

/// The Content-Length once `value` (a list of lengths) is taken in after `prior`: every
/// length must be digits and all of them the same.
fn content_length(
    prior: Result<Option<u64>, &'static str>,
    value: &[u8],
) -> Result<Option<u64>, &'static str> {
    let mut length = prior?;
    for part in value.split(|b| *b == b',') {
        let n = std::str::from_utf8(part.trim_ascii())
            .ok()
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or("bad content-length")?;
        if length.is_some_and(|l| l != n) {
            return Err("differing content-length values");
        }
        length = Some(n);
    }
    Ok(length)
}

/// A complete head at the start of `buf` (consumed), `None` when more bytes are needed. With
/// `pass`, the fields of a final answer are [`Passed`] unless Connection names some of them.
pub(super) fn parse_head(
    buf: &mut BytesMut,
    pass: bool,
) -> Result<Option<ResponseHead>, &'static str> {
    // Uninitialised slots: zeroing 128 of them (4 KiB) cost more than parsing a usual head.
    let mut slots =
        [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut parsed,
        buf,
        &mut slots,
    ) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err("too many header fields"),
        Err(_) => return Err("malformed response head"),
    };
    let status = parsed
        .code
        .and_then(|c| StatusCode::from_u16(c).ok())
        .ok_or("bad status code")?;
    let version = match parsed.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let mut said = Said::default();
    for h in parsed.headers.iter() {
        said.note(h.name.as_bytes(), h.value);
    }
    if pass && !status.is_informational() && !said.more {
        let passed = pass_on(parsed.headers);
        bytes::Buf::advance(buf, len);
        return Ok(Some(ResponseHead {
            status,
            version,
            headers: HeaderMap::new(),
            said,
            passed: Some(passed),
        }));
    }
    let mut places = Places::<MAX_HEADERS>::new();
    field_places(buf, parsed.headers, &mut places);
    let head = buf.split_to(len).freeze();
    Ok(Some(ResponseHead {
        status,
        version,
        headers: fields_map(&head, &places, said.more)?,
        said,
        passed: None,
    }))
}

/// The fields of a head split off as `head` in a map, sharing its bytes. Unless Connection
/// names more than persistence (`more`), Connection and Keep-Alive are left out: the proxy
/// would remove both anyway, and `said` keeps what they say.
fn fields_map(head: &Bytes, places: &[[u32; 4]], more: bool) -> Result<HeaderMap, &'static str> {
    static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
    let mut headers = spare::take(places.len());
    for &place in places {
        let (name, value) = shared_field(head, place).ok_or("bad header field")?;
        if !more && (name == header::CONNECTION || name == KEEP_ALIVE) {
            continue;
        }
        headers.append(name, value);
    }
    Ok(headers)
}

/// The lines a client is sent for `fields`: hop-by-hop and framing fields left out, names in
/// lower case.
fn pass_on(fields: &[httparse::Header<'_>]) -> Passed {
    let size = fields
        .iter()
        .map(|h| h.name.len() + h.value.len() + 4)
        .sum();
    let mut lines = spare::take_lines(size);
    let mut date = false;
    for h in fields {
        let name = h.name.as_bytes();
        if not_passed(name) {
            continue;
        }
        date |= is_named(name, b"date");
        lines.extend(name.iter().map(u8::to_ascii_lowercase));
        lines.extend_from_slice(b": ");
        lines.extend_from_slice(h.value);
        lines.extend_from_slice(b"\r\n");
    }
    Passed { lines, date }
}

/// Fields never passed on: hop-by-hop ones (Upgrade included: a 101 is never passed) and the
/// framing the server side writes itself.
fn not_passed(name: &[u8]) -> bool {
    const NAMES: [&[u8]; 10] = [
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"content-length",
    ];
    // Their first letters rule out most fields before any comparison.
    matches!(
        name.first(),
        Some(b'c' | b'k' | b'p' | b't' | b'u' | b'C' | b'K' | b'P' | b'T' | b'U')
    ) && NAMES.iter().any(|n| is_named(name, n))
}

/// `name` (a field name as httparse takes it: token bytes, any case) is `lower` (a lower-case
/// name of letters and dashes), compared eight bytes at a time. Setting bit 0x20 lower-cases a
/// letter, and makes no other token byte a letter or a dash, so this is an exact
/// case-insensitive comparison for such names.
pub(super) fn is_named(name: &[u8], lower: &[u8]) -> bool {
    if name.len() != lower.len() {
        return false;
    }
    let (mut a, mut b) = (name.chunks_exact(8), lower.chunks_exact(8));
    let word = |c: &[u8]| u64::from_ne_bytes(c.try_into().unwrap_or([0; 8]));
    for (x, y) in (&mut a).zip(&mut b) {
        if word(x) | 0x2020_2020_2020_2020 != word(y) {
            return false;
        }
    }
    (a.remainder().iter().zip(b.remainder())).all(|(x, y)| x | 0x20 == *y)
}

/// Where each field's name and value lie in a head: offset and length of each.
pub(crate) type Places<const N: usize> = heapless::Vec<[u32; 4], N>;

/// Where each field's name and value lie in `buf` (into `places`, which holds as many fields as
/// httparse was given slots for), so that once the head is split off the values share its bytes
/// instead of each being copied (names are mostly standard ones, which need no copy). Used for
/// request and response heads alike; a head is far below 4 GiB.
pub(super) fn field_places<const N: usize>(
    buf: &[u8],
    fields: &[httparse::Header<'_>],
    places: &mut Places<N>,
) {
    let base = buf.as_ptr() as usize;
    let at = |p: *const u8| (p as usize - base) as u32;
    for h in fields.iter().take(N) {
        let (name, value) = (h.name.as_bytes(), h.value);
        // Cannot fail: at most N fields are taken.
        let _ = places.push([
            at(name.as_ptr()),
            name.len() as u32,
            at(value.as_ptr()),
            value.len() as u32,
        ]);
    }
}

/// The field at `place` (from [`field_places`]) of a head split off as `head`; `None` when its
/// name or value is not one `http` takes.
pub(super) fn shared_field(head: &Bytes, place: [u32; 4]) -> Option<(HeaderName, HeaderValue)> {
    let [name_at, name_len, at, n] = place.map(|v| v as usize);
    let name = HeaderName::from_bytes(&head[name_at..name_at + name_len]).ok()?;
    let value = HeaderValue::from_maybe_shared(head.slice(at..at + n)).ok()?;
    Some((name, value))
}

/// How the response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    Empty,
    Length(u64),
    Chunked,
    Close,
}

pub(super) fn framing(method: &Method, head: &ResponseHead) -> Result<Framing, &'static str> {
    let status = head.status;
    if *method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok(Framing::Empty);
    }
    let said = &head.said;
    if head.version == Version::HTTP_10 && said.transfer_encoding {
        // RFC 9112 §6.1: faulty framing.
        return Err("transfer-encoding in an HTTP/1.0 answer");
    }
    if let Some(chunked) = said.chunked_last {
        return Ok(if chunked {
            Framing::Chunked
        } else {
            Framing::Close
        });
    }
    Ok(match said.length? {
        Some(0) => Framing::Empty,
        Some(n) => Framing::Length(n),
        None => Framing::Close,
    })
}

/// May the connection serve another exchange once this answer's body has been read?
pub(super) fn keeps_alive(head: &ResponseHead) -> bool {
    head.version == Version::HTTP_11 && !head.said.close
}
