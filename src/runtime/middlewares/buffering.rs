//! `buffering`: read a whole request before it is sent upstream, and a whole response before it
//! is sent back, as Traefik's (vulcand oxy's buffer) does: the server gets a `Content-Length`
//! and no slow client, bodies over `maxRequestBodyBytes` get 413, responses over
//! `maxResponseBodyBytes` an error, and `retryExpression` may send the buffered request again.
//!
//! Bounded twice: each body keeps at most `mem*BodyBytes` (1 MiB) in memory and all buffering
//! middlewares together at most `[limits] max_buffered_memory`; the rest goes to an unnamed
//! temporary file (removed when the body is dropped). A body with no `max*BodyBytes` is
//! still cut at `[limits] max_buffered_body` (Traefik has no ceiling; an SD card has one), and
//! all spill files together stay within it too (503 beyond). Both budgets are held by guards,
//! so a request abandoned mid-read gives its share back.
//! File writes and reads run on the blocking pool, never on a worker's event loop.

use std::io::Write;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Bytes, BytesMut};
use http::StatusCode;
use http_body::{Body, Frame};
use http_body_util::{BodyExt, StreamBody};
use serde::Deserialize;

use super::expr::{Call, Expr, Func, Ret, Value};
use super::{MiddlewareError, util};

const KIND: &str = "buffering";

/// The error type of a replayed body.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
const DEFAULT_MEM: u64 = 1024 * 1024;
/// oxy's bound on retries of one request.
const MAX_ATTEMPTS: u32 = 10;
/// Bytes written to (or read from) a spill file at once.
const CHUNK: usize = 64 * 1024;

/// `[http.middlewares.NAME.buffering]`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BufferingConfig {
    #[serde(default, deserialize_with = "util::int")]
    pub max_request_body_bytes: i64,
    #[serde(default, deserialize_with = "util::opt_int")]
    pub mem_request_body_bytes: Option<i64>,
    #[serde(default, deserialize_with = "util::int")]
    pub max_response_body_bytes: i64,
    #[serde(default, deserialize_with = "util::opt_int")]
    pub mem_response_body_bytes: Option<i64>,
    #[serde(default, deserialize_with = "util::scalar_string")]
    pub retry_expression: String,
}

const FUNCS: &[Func] = &[
    Func {
        name: "RequestMethod",
        arity: 0,
        ret: Ret::Str,
    },
    Func {
        name: "IsNetworkError",
        arity: 0,
        ret: Ret::Bool,
    },
    Func {
        name: "Attempts",
        arity: 0,
        ret: Ret::Num,
    },
    Func {
        name: "ResponseCode",
        arity: 0,
        ret: Ret::Num,
    },
];

/// Bytes all buffered bodies hold in memory now.
static IN_MEMORY: AtomicU64 = AtomicU64::new(0);
/// Bytes all buffered bodies hold in spill files now.
static SPILLED: AtomicU64 = AtomicU64::new(0);

/// Limits on one body.
#[derive(Debug, Clone, Copy)]
struct Limits {
    mem: u64,
    max: u64,
    /// All spill files together (`[limits] max_buffered_body`).
    spill_budget: u64,
}

pub struct Buffering {
    request: Limits,
    response: Limits,
    retry: Option<Expr>,
    /// `[limits] max_buffered_memory`.
    memory_budget: usize,
}

/// Why a body could not be buffered.
#[derive(Debug)]
pub enum Overflow {
    /// Longer than the limit.
    TooLarge,
    /// The body failed while being read.
    Body(String),
    /// The spill file failed.
    Io(std::io::Error),
    /// The spill files of all buffered bodies together are at `[limits] max_buffered_body`.
    Full,
}

impl Buffering {
    pub fn compile(c: &BufferingConfig, bounds: &super::Bounds) -> Result<Self, MiddlewareError> {
        let limits = |mem: Option<i64>, max: i64, what: &str| {
            let mem = mem.unwrap_or(DEFAULT_MEM as i64);
            if mem < 0 || max < 0 {
                return Err(MiddlewareError::invalid(
                    KIND,
                    format!("{what} byte limits must not be negative"),
                ));
            }
            let max = if max == 0 {
                bounds.max_buffered_body
            } else {
                max as u64
            };
            Ok(Limits {
                mem: mem as u64,
                max,
                spill_budget: bounds.max_buffered_body,
            })
        };
        let retry = match c.retry_expression.trim() {
            "" => None,
            text => Some(Expr::parse(text, FUNCS).map_err(|why| {
                MiddlewareError::invalid(KIND, format!("retryExpression: {why}"))
            })?),
        };
        Ok(Buffering {
            request: limits(
                c.mem_request_body_bytes,
                c.max_request_body_bytes,
                "request",
            )?,
            response: limits(
                c.mem_response_body_bytes,
                c.max_response_body_bytes,
                "response",
            )?,
            retry,
            memory_budget: bounds.max_buffered_memory,
        })
    }

    /// A request whose `Content-Length` is over the limit is refused before reading.
    pub fn request_too_large(&self, req: &http::request::Parts) -> bool {
        let len = req.headers.get(http::header::CONTENT_LENGTH);
        let len = len.and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
        len.is_some_and(|n| n > self.request.max)
    }

    /// Read a request body whole.
    pub async fn request<B>(&self, body: B) -> Result<Buffered, Overflow>
    where
        B: Body<Data = Bytes> + Unpin,
        B::Error: std::fmt::Display,
    {
        collect(body, self.request, self.memory_budget).await
    }

    /// Read a response body whole.
    pub async fn response<B>(&self, body: B) -> Result<Buffered, Overflow>
    where
        B: Body<Data = Bytes> + Unpin,
        B::Error: std::fmt::Display,
    {
        collect(body, self.response, self.memory_budget).await
    }

    /// Whether a retry expression is set (the core then keeps the request head for resends).
    pub fn retries(&self) -> bool {
        self.retry.is_some()
    }

    /// Whether to send the request again after attempt `attempt` (1 for the first) was
    /// answered with `status`.
    pub fn retry(&self, attempt: u32, status: StatusCode, method: &http::Method) -> bool {
        let Some(expr) = &self.retry else {
            return false;
        };
        if attempt > MAX_ATTEMPTS {
            return false;
        }
        let code = status.as_u16();
        expr.eval(&|c: &Call| match c.func {
            0 => Value::Str(method.as_str()),
            1 => Value::Bool(code == 502 || code == 504),
            2 => Value::Num(f64::from(attempt)),
            _ => Value::Num(f64::from(code)),
        })
    }
}

/// The answer for a body that could not be buffered: 413 for a request too large (oxy's size
/// error handler), 503 when the spill files are full, 400 for a broken one, and 500 for any
/// response that could not be read whole, as Traefik answers.
pub fn overflow_status(o: &Overflow, request: bool) -> StatusCode {
    match o {
        Overflow::TooLarge if request => StatusCode::PAYLOAD_TOO_LARGE,
        Overflow::Full if request => StatusCode::SERVICE_UNAVAILABLE,
        _ if request => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A body read whole: its start in memory, the rest in an unnamed file. Cheap to clone; each
/// [`Buffered::body`] replays it from the start.
#[derive(Clone)]
pub struct Buffered {
    inner: Arc<Inner>,
}

struct Inner {
    mem: Bytes,
    file: Option<std::fs::File>,
    len: u64,
    /// The memory and spill bytes this body holds of the shared budgets.
    _held: (Held, Held),
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing a large unlinked file frees its blocks: not on a worker's event loop.
        if let Some(file) = self.file.take()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn_blocking(move || drop(file));
        }
    }
}

impl std::fmt::Debug for Buffered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Buffered")
            .field("len", &self.inner.len)
            .field("in_memory", &self.inner.mem.len())
            .finish()
    }
}

impl Buffered {
    /// The body's length (for `Content-Length`).
    pub fn len(&self) -> u64 {
        self.inner.len
    }

    pub fn is_empty(&self) -> bool {
        self.inner.len == 0
    }

    /// The body, from its first byte.
    pub fn body(&self) -> http_body_util::combinators::BoxBody<Bytes, BoxError> {
        let state = (Arc::clone(&self.inner), 0u64);
        let stream = futures_util::stream::unfold(state, |(inner, at)| async move {
            if at >= inner.len {
                return None;
            }
            let mem_len = inner.mem.len() as u64;
            if at < mem_len {
                let chunk = inner.mem.slice(at as usize..);
                return Some((Ok(Frame::data(chunk)), (inner, mem_len)));
            }
            let want = (inner.len - at).min(CHUNK as u64) as usize;
            let reader = Arc::clone(&inner);
            let read = tokio::task::spawn_blocking(move || {
                let mut buf = vec![0u8; want];
                let file = reader.file.as_ref().ok_or(std::io::ErrorKind::NotFound)?;
                file.read_exact_at(&mut buf, at - reader.mem.len() as u64)?;
                Ok::<_, std::io::Error>(buf)
            })
            .await;
            match read {
                Ok(Ok(buf)) => {
                    let n = buf.len() as u64;
                    Some((Ok(Frame::data(Bytes::from(buf))), (inner, at + n)))
                }
                Ok(Err(e)) => Some((Err(e.into()), (inner, u64::MAX))),
                Err(e) => Some((Err(e.into()), (inner, u64::MAX))),
            }
        });
        StreamBody::new(stream).boxed()
    }
}

async fn collect<B>(mut body: B, limits: Limits, budget: usize) -> Result<Buffered, Overflow>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    // Exactly the memory the body may keep, when its length is known (no doubling).
    let hint = body.size_hint().exact().unwrap_or(0).min(limits.mem) as usize;
    let mut mem = BytesMut::with_capacity(hint);
    // Given back when dropped: on an error, or when the request is abandoned mid-read.
    let mut mem_held = Held::new(&IN_MEMORY);
    let mut spill_held = Held::new(&SPILLED);
    let mut pending = BytesMut::new();
    let mut file: Option<std::fs::File> = None;
    let mut len = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Overflow::Body(e.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers are not kept
        };
        len += data.len() as u64;
        if len > limits.max {
            return Err(Overflow::TooLarge);
        }
        let mut data = &data[..];
        if file.is_none() {
            let room = (limits.mem as usize)
                .saturating_sub(mem.len())
                .min(data.len());
            let granted = mem_held.take(room as u64, budget as u64) as usize;
            mem.extend_from_slice(&data[..granted]);
            data = &data[granted..];
            if !data.is_empty() {
                let made = tokio::task::spawn_blocking(tempfile::tempfile).await;
                let made = made.map_err(|e| Overflow::Io(std::io::Error::other(e)))?;
                file = Some(made.map_err(Overflow::Io)?);
            }
        }
        if !data.is_empty() {
            let n = data.len() as u64;
            if spill_held.take(n, limits.spill_budget) < n {
                return Err(Overflow::Full);
            }
            pending.extend_from_slice(data);
        }
        if pending.len() >= CHUNK {
            file = Some(spill(file.take(), pending.split().freeze()).await?);
        }
    }
    if !pending.is_empty() {
        file = Some(spill(file.take(), pending.split().freeze()).await?);
    }
    Ok(Buffered {
        inner: Arc::new(Inner {
            mem: mem.freeze(),
            file,
            len,
            _held: (mem_held, spill_held),
        }),
    })
}

/// Bytes taken from a shared budget, given back when dropped.
struct Held {
    counter: &'static AtomicU64,
    n: u64,
}

impl Held {
    fn new(counter: &'static AtomicU64) -> Self {
        Held { counter, n: 0 }
    }

    /// Take up to `want` more bytes while the counter stays within `budget`; what was taken.
    fn take(&mut self, want: u64, budget: u64) -> u64 {
        let mut now = self.counter.load(Ordering::Relaxed);
        loop {
            let grant = want.min(budget.saturating_sub(now));
            if grant == 0 {
                return 0;
            }
            let next = now + grant;
            match (self.counter).compare_exchange_weak(
                now,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    self.n += grant;
                    return grant;
                }
                Err(seen) => now = seen,
            }
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.counter.fetch_sub(self.n, Ordering::Relaxed);
    }
}

/// Append `data` to the spill file (on the blocking pool).
async fn spill(file: Option<std::fs::File>, data: Bytes) -> Result<std::fs::File, Overflow> {
    let Some(mut file) = file else {
        return Err(Overflow::Io(std::io::Error::other("no spill file")));
    };
    tokio::task::spawn_blocking(move || file.write_all(&data).map(|()| file))
        .await
        .map_err(|e| Overflow::Io(std::io::Error::other(e)))?
        .map_err(Overflow::Io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use http_body_util::{Full, StreamBody};

    fn bounds() -> super::super::Bounds {
        super::super::Bounds::default()
    }

    fn chunks(
        n: usize,
        size: usize,
    ) -> impl Body<Data = Bytes, Error = std::convert::Infallible> + Unpin {
        let frames: Vec<Result<Frame<Bytes>, std::convert::Infallible>> = (0..n)
            .map(|i| Ok(Frame::data(Bytes::from(vec![b'a' + (i % 26) as u8; size]))))
            .collect();
        StreamBody::new(futures_util::stream::iter(frames))
    }

    async fn read_all(b: &Buffered) -> Vec<u8> {
        b.body().collect().await.unwrap().to_bytes().to_vec()
    }

    #[tokio::test]
    async fn small_bodies_stay_in_memory_large_ones_spill_and_replay() {
        let c = BufferingConfig {
            mem_request_body_bytes: Some(10_000),
            ..Default::default()
        };
        let b = Buffering::compile(&c, &bounds()).unwrap();
        let small = b
            .request(Full::new(Bytes::from_static(b"hello")))
            .await
            .unwrap();
        assert_eq!(small.len(), 5);
        assert!(small.inner.file.is_none());
        assert_eq!(read_all(&small).await, b"hello");

        let big = b.request(chunks(40, 7_000)).await.unwrap();
        assert_eq!(big.len(), 280_000);
        assert_eq!(big.inner.mem.len(), 10_000);
        assert!(big.inner.file.is_some());
        let want: Vec<u8> = (0..40)
            .flat_map(|i| vec![b'a' + (i % 26) as u8; 7_000])
            .collect();
        // Twice: a retry replays the same bytes.
        assert_eq!(read_all(&big).await, want);
        assert_eq!(read_all(&big).await, want);
    }

    #[tokio::test]
    async fn limits() {
        let c = BufferingConfig {
            max_request_body_bytes: 1000,
            ..Default::default()
        };
        let b = Buffering::compile(&c, &bounds()).unwrap();
        assert!(matches!(
            b.request(chunks(3, 400)).await,
            Err(Overflow::TooLarge)
        ));
        assert!(b.request(chunks(2, 500)).await.is_ok());
        let (mut parts, ()) = http::Request::new(()).into_parts();
        parts
            .headers
            .insert("content-length", "1001".parse().unwrap());
        assert!(b.request_too_large(&parts));
        // The shared budget: a body gets memory only while the budget has room.
        let tight = super::super::Bounds {
            max_buffered_memory: 0,
            ..bounds()
        };
        let b = Buffering::compile(&BufferingConfig::default(), &tight).unwrap();
        let spilled = b.request(chunks(1, 100)).await.unwrap();
        assert!(spilled.inner.mem.is_empty() && spilled.inner.file.is_some());
        assert_eq!(read_all(&spilled).await, vec![b'a'; 100]);
    }

    #[tokio::test]
    async fn budgets_are_given_back_even_by_an_abandoned_read() {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let mut a = Held::new(&COUNTER);
        assert_eq!(a.take(60, 100), 60);
        let mut b = Held::new(&COUNTER);
        assert_eq!(b.take(60, 100), 40, "only what is left of the budget");
        drop(a);
        assert_eq!(COUNTER.load(Ordering::Relaxed), 40);
        drop(b);
        assert_eq!(COUNTER.load(Ordering::Relaxed), 0);
        // A read that never ends, abandoned: its guard goes with the future.
        let endless = StreamBody::new(
            futures_util::stream::iter([Ok::<_, std::convert::Infallible>(Frame::data(
                Bytes::from_static(b"x"),
            ))])
            .chain(futures_util::stream::pending()),
        );
        let b = Buffering::compile(&BufferingConfig::default(), &bounds()).unwrap();
        let read = tokio::time::timeout(std::time::Duration::from_millis(20), b.request(endless));
        assert!(read.await.is_err(), "the read cannot finish");
    }

    #[test]
    fn retry_expression() {
        let c = BufferingConfig {
            retry_expression: "IsNetworkError() && Attempts() < 2".into(),
            ..Default::default()
        };
        let b = Buffering::compile(&c, &bounds()).unwrap();
        let get = http::Method::GET;
        assert!(b.retry(1, StatusCode::BAD_GATEWAY, &get));
        assert!(!b.retry(2, StatusCode::BAD_GATEWAY, &get));
        assert!(!b.retry(1, StatusCode::INTERNAL_SERVER_ERROR, &get));
        let c = BufferingConfig {
            retry_expression: r#"RequestMethod() == "GET" && ResponseCode() >= 500"#.into(),
            ..Default::default()
        };
        let b = Buffering::compile(&c, &bounds()).unwrap();
        assert!(b.retry(3, StatusCode::SERVICE_UNAVAILABLE, &get));
        assert!(!b.retry(11, StatusCode::SERVICE_UNAVAILABLE, &get));
        assert!(!b.retry(1, StatusCode::SERVICE_UNAVAILABLE, &http::Method::POST));
        for bad in ["Attempts()", "Bogus() > 1", "ResponseCode() == \"x\""] {
            let c = BufferingConfig {
                retry_expression: bad.into(),
                ..Default::default()
            };
            assert!(Buffering::compile(&c, &bounds()).is_err(), "{bad}");
        }
        let c = BufferingConfig {
            max_request_body_bytes: -1,
            ..Default::default()
        };
        assert!(Buffering::compile(&c, &bounds()).is_err());
    }
}
