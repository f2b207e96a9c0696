//! `compress`: gzip responses for clients that accept it, as Traefik v3 decides: the request's
//! `Accept-Encoding` allows gzip (or `*`, or it is absent and `defaultEncoding` is gzip), the
//! response is not encoded already, its content type is not excluded (gRPC never is
//! compressed) and its body reaches `minResponseBodyBytes`.
//!
//! Gzip only: brotli and zstd cost memory a Pi cannot spare (`encodings` naming only them is an
//! error). The middleware decides from the heads and marks the response with a [`Plan`]; the
//! proxy core then encodes the body as it streams ([`GzipBody`]). A body without a length is
//! encoded whatever its size, as Traefik does (it cannot know the size before sending the
//! head). Each stream
//! holds the deflate state (about 300 KiB), so concurrent encodings are bounded per middleware.

use std::io::Write;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http_body::{Body, Frame, SizeHint};
use serde::Deserialize;

use super::util;
use super::{Ctx, Flow, MiddlewareError};

const KIND: &str = "compress";

/// Encodings at once per compress middleware; more responses go out unencoded.
pub const MAX_STREAMS: usize = 64;

/// `[http.middlewares.x.compress]`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CompressConfig {
    #[serde(default, deserialize_with = "util::str_list")]
    pub excluded_content_types: Vec<String>,
    #[serde(default, deserialize_with = "util::str_list")]
    pub included_content_types: Vec<String>,
    #[serde(default, deserialize_with = "util::opt_int")]
    pub min_response_body_bytes: Option<i64>,
    #[serde(default)]
    pub default_encoding: Option<String>,
    #[serde(default, deserialize_with = "util::str_list")]
    pub encodings: Vec<String>,
}

/// What the core does with a response the middleware chose to encode (in its extensions).
#[derive(Debug, Clone)]
pub struct Plan {
    /// The slot this encoding holds (given back when the body is done).
    pub slot: Slot,
}

/// One of a middleware's [`MAX_STREAMS`] encodings.
#[derive(Debug)]
pub struct Slot(Arc<AtomicUsize>);

impl Clone for Slot {
    fn clone(&self) -> Self {
        self.0.fetch_add(1, Ordering::Relaxed);
        Slot(Arc::clone(&self.0))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Debug)]
pub(super) struct Compress {
    id: u64,
    excluded: Vec<String>,
    included: Vec<String>,
    min: u64,
    default_gzip: bool,
    streams: Arc<AtomicUsize>,
}

/// A content type as compared: lower case, no blanks, parameters kept only when the
/// configured one has them.
fn normalized(ct: &str) -> String {
    ct.chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase()
}

fn matches(list: &[String], ct: &str) -> bool {
    let full = normalized(ct);
    let bare = full.split(';').next().unwrap_or("");
    list.iter()
        .any(|l| *l == full || (!l.contains(';') && *l == bare))
}

impl Compress {
    pub(super) fn compile(c: &CompressConfig, id: u64) -> Result<Compress, MiddlewareError> {
        if !c.excluded_content_types.is_empty() && !c.included_content_types.is_empty() {
            return Err(MiddlewareError::invalid(
                KIND,
                "excludedContentTypes and includedContentTypes are mutually exclusive",
            ));
        }
        if !c.encodings.is_empty() && !c.encodings.iter().any(|e| e.trim() == "gzip") {
            return Err(MiddlewareError::invalid(
                KIND,
                "boma encodes gzip only (brotli and zstd cost too much memory); add gzip to encodings",
            ));
        }
        let min = match c.min_response_body_bytes {
            None => 1024,
            Some(n) if n >= 0 => n as u64,
            Some(n) => {
                return Err(MiddlewareError::invalid(
                    KIND,
                    format!("minResponseBodyBytes must not be negative, got {n}"),
                ));
            }
        };
        let default_gzip = match c.default_encoding.as_deref().map(str::trim) {
            None | Some("") => false,
            Some("gzip") => true,
            Some(other) => {
                return Err(MiddlewareError::invalid(
                    KIND,
                    format!("defaultEncoding `{other}`: boma encodes gzip only"),
                ));
            }
        };
        Ok(Compress {
            id,
            excluded: c
                .excluded_content_types
                .iter()
                .map(|s| normalized(s))
                .collect(),
            included: c
                .included_content_types
                .iter()
                .map(|s| normalized(s))
                .collect(),
            min,
            default_gzip,
            streams: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// Does the client take gzip?
    pub(super) fn on_request(&self, req: &http::request::Parts, ctx: &mut Ctx) -> Flow {
        if req.method == http::Method::HEAD {
            return Flow::Continue;
        }
        // (engaged, encode): Traefik's handler takes the answer (and says Vary) whenever the
        // client names gzip or `*`; it encodes for `*` only with defaultEncoding gzip.
        let (engaged, encode) = match req.headers.get(header::ACCEPT_ENCODING) {
            None => (self.default_gzip, self.default_gzip),
            Some(v) => match accepts_gzip(v.as_bytes()) {
                Accepts::Gzip => (true, true),
                Accepts::Any => (true, self.default_gzip),
                Accepts::No => (false, false),
            },
        };
        if engaged {
            ctx.compress_for.push((self.id, encode));
        }
        Flow::Continue
    }

    /// Marks a response worth encoding with a [`Plan`]. `Vary: Accept-Encoding` goes on every
    /// answer to a client that accepts gzip, encoded or not, as Traefik sets it.
    pub(super) fn on_response(&self, ctx: &Ctx, resp: &mut http::response::Parts) {
        let Some(&(_, encode)) = ctx.compress_for.iter().find(|(id, _)| *id == self.id) else {
            return;
        };
        resp.headers
            .append(header::VARY, HeaderValue::from_static("Accept-Encoding"));
        if !encode {
            return;
        }
        let h = &resp.headers;
        let ct = h
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let excluded = normalized(ct).starts_with("application/grpc")
            || (!self.excluded.is_empty() && matches(&self.excluded, ct))
            || (!self.included.is_empty() && !matches(&self.included, ct));
        if excluded || h.contains_key(header::CONTENT_ENCODING) {
            return;
        }
        let st = resp.status;
        let bodyless = st.is_informational()
            || st == http::StatusCode::NO_CONTENT
            || st == http::StatusCode::NOT_MODIFIED
            || st == http::StatusCode::PARTIAL_CONTENT;
        let short = (resp.headers.get(header::CONTENT_LENGTH))
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            .is_some_and(|n| n < self.min);
        if bodyless || short {
            return;
        }
        if resp.extensions.get::<Plan>().is_some() {
            return;
        }
        if self.streams.fetch_add(1, Ordering::Relaxed) >= MAX_STREAMS {
            self.streams.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        resp.extensions.insert(Plan {
            slot: Slot(Arc::clone(&self.streams)),
        });
    }
}

/// What an `Accept-Encoding` value allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepts {
    /// gzip by name, with a quality above zero.
    Gzip,
    /// Any coding (`*`) but not gzip by name: `defaultEncoding` decides, as in Traefik.
    Any,
    No,
}

/// Reads an `Accept-Encoding` value (an empty one allows nothing).
pub fn accepts_gzip(value: &[u8]) -> Accepts {
    let text = String::from_utf8_lossy(value);
    let mut star = false;
    for item in text.split(',') {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .find_map(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .map(|q| q.trim().parse::<f32>().unwrap_or(0.0))
            })
            .unwrap_or(1.0);
        match coding.as_str() {
            "gzip" | "x-gzip" if q > 0.0 => return Accepts::Gzip,
            "gzip" | "x-gzip" => return Accepts::No,
            "*" => star = q > 0.0,
            _ => {}
        }
    }
    if star { Accepts::Any } else { Accepts::No }
}

/// The headers of an encoded response: `Content-Encoding: gzip`, no length (the encoded one
/// is not known before the end), no range support.
pub fn mark_encoded(headers: &mut http::HeaderMap) {
    headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    headers.remove(header::CONTENT_LENGTH);
    headers.remove(header::ACCEPT_RANGES);
    // A strong validator no longer matches the bytes sent.
    if let Some(etag) = headers.get(header::ETAG).cloned()
        && !etag.as_bytes().starts_with(b"W/")
        && let Ok(weak) = HeaderValue::from_bytes(&[b"W/", etag.as_bytes()].concat())
    {
        headers.insert(header::ETAG, weak);
    }
}

pin_project_lite::pin_project! {
    /// A body gzip-encoded as it streams: what the inner body gives is compressed at once, and
    /// flushed whenever the inner body has nothing more for now (so a slow stream is not held
    /// back), then finished at its end.
    pub struct GzipBody<B> {
        #[pin]
        inner: B,
        encoder: Option<flate2::write::GzEncoder<Vec<u8>>>,
        dirty: bool,
        _slot: Slot,
    }
}

impl<B> GzipBody<B> {
    pub fn new(inner: B, slot: Slot) -> Self {
        GzipBody {
            inner,
            // Level 5: most of level 6's ratio for less CPU (a Pi's cores are slow).
            encoder: Some(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::new(5),
            )),
            dirty: false,
            _slot: slot,
        }
    }
}

fn take(encoder: &mut flate2::write::GzEncoder<Vec<u8>>) -> Option<Bytes> {
    let out = std::mem::take(encoder.get_mut());
    (!out.is_empty()).then(|| Bytes::from(out))
}

impl<B> Body for GzipBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let mut this = self.project();
        loop {
            let Some(encoder) = this.encoder.as_mut() else {
                return Poll::Ready(None);
            };
            match this.inner.as_mut().poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    // Trailers cannot follow an encoded body here: dropped, as Traefik does.
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    encoder.write_all(&data)?;
                    *this.dirty = true;
                    if let Some(out) = take(encoder) {
                        return Poll::Ready(Some(Ok(Frame::data(out))));
                    }
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e.into()))),
                Poll::Ready(None) => {
                    let Some(encoder) = this.encoder.take() else {
                        return Poll::Ready(None);
                    };
                    let out = encoder.finish()?;
                    return Poll::Ready(
                        (!out.is_empty()).then(|| Ok(Frame::data(Bytes::from(out)))),
                    );
                }
                Poll::Pending => {
                    if *this.dirty {
                        *this.dirty = false;
                        encoder.flush()?;
                        if let Some(out) = take(encoder) {
                            return Poll::Ready(Some(Ok(Frame::data(out))));
                        }
                    }
                    return Poll::Pending;
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.encoder.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_encoding_is_read_with_qualities() {
        assert_eq!(accepts_gzip(b"gzip"), Accepts::Gzip);
        assert_eq!(accepts_gzip(b"br, GZip;q=0.5"), Accepts::Gzip);
        assert_eq!(accepts_gzip(b"gzip;q=0, *"), Accepts::No);
        assert_eq!(accepts_gzip(b"*"), Accepts::Any);
        assert_eq!(accepts_gzip(b"*;q=0"), Accepts::No);
        assert_eq!(accepts_gzip(b""), Accepts::No);
        assert_eq!(accepts_gzip(b"identity, br"), Accepts::No);
        assert_eq!(accepts_gzip(b"gzip;q=nonsense"), Accepts::No);
    }

    #[test]
    fn configurations_boma_cannot_honour_are_errors() {
        let bad = [
            CompressConfig {
                excluded_content_types: vec!["a/b".into()],
                included_content_types: vec!["c/d".into()],
                ..Default::default()
            },
            CompressConfig {
                encodings: vec!["br".into(), "zstd".into()],
                ..Default::default()
            },
            CompressConfig {
                default_encoding: Some("br".into()),
                ..Default::default()
            },
            CompressConfig {
                min_response_body_bytes: Some(-1),
                ..Default::default()
            },
        ];
        for c in bad {
            assert!(Compress::compile(&c, 1).is_err(), "{c:?}");
        }
        assert!(Compress::compile(&CompressConfig::default(), 1).is_ok());
    }

    #[test]
    fn content_types_compare_without_case_blanks_or_unasked_parameters() {
        let list = vec![
            normalized("Text/HTML"),
            normalized("text/plain; charset=utf-8"),
        ];
        assert!(matches(&list, "text/html; charset=ISO-8859-1"));
        assert!(matches(&list, "text/plain;charset=UTF-8"));
        assert!(!matches(&list, "text/plain; charset=latin1"));
        assert!(!matches(&list, "image/png"));
    }
}
