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

use bytes::Bytes;
use http::StatusCode;
use http_body::Body;
use serde::Deserialize;

pub use super::buffered::{BoxError, Buffered, Overflow};
use super::buffered::{Counters, Limits, SHARED};
use super::expr::{Call, Expr, Func, Ret, Value};
use super::{MiddlewareError, util};

const KIND: &str = "buffering";

const DEFAULT_MEM: u64 = 1024 * 1024;
/// oxy's bound on retries of one request.
const MAX_ATTEMPTS: u32 = 10;

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

pub struct Buffering {
    request: Limits,
    response: Limits,
    retry: Option<Expr>,
    /// The shared budgets' counters (a test's own in unit tests).
    counters: &'static Counters,
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
                memory_budget: bounds.max_buffered_memory as u64,
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
            counters: &SHARED,
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
        Buffered::collect(body, self.request, self.counters).await
    }

    /// Read a response body whole.
    pub async fn response<B>(&self, body: B) -> Result<Buffered, Overflow>
    where
        B: Body<Data = Bytes> + Unpin,
        B::Error: std::fmt::Display,
    {
        Buffered::collect(body, self.response, self.counters).await
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

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use http_body::Frame;
    use http_body_util::{BodyExt, Full, StreamBody};
    use std::sync::atomic::Ordering;

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
        assert!(!small.spilled());
        assert_eq!(read_all(&small).await, b"hello");

        let big = b.request(chunks(40, 7_000)).await.unwrap();
        assert_eq!(big.len(), 280_000);
        assert_eq!(big.in_memory(), 10_000);
        assert!(big.spilled());
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
        assert!(spilled.in_memory() == 0 && spilled.spilled());
        assert_eq!(read_all(&spilled).await, vec![b'a'; 100]);
    }

    /// A buffering middleware counting into `counters`.
    fn counted(
        c: &BufferingConfig,
        bounds: &super::super::Bounds,
        counters: &'static Counters,
    ) -> Buffering {
        let mut b = Buffering::compile(c, bounds).unwrap();
        b.counters = counters;
        b
    }

    /// Wait until the blocking pool has closed dropped spill files.
    async fn settled(counter: &std::sync::atomic::AtomicU64) -> u64 {
        for _ in 0..200 {
            if counter.load(Ordering::Relaxed) == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        counter.load(Ordering::Relaxed)
    }

    #[tokio::test]
    async fn budgets_are_given_back_even_by_an_abandoned_read() {
        static C: Counters = Counters::new();
        let c = BufferingConfig {
            mem_request_body_bytes: Some(1000),
            ..Default::default()
        };
        let b = counted(&c, &bounds(), &C);
        // A read that never ends, abandoned after it has filled memory and begun spilling.
        let frames = (0..3)
            .map(|_| Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from(vec![b'z'; 700]))));
        let endless = StreamBody::new(
            futures_util::stream::iter(frames).chain(futures_util::stream::pending()),
        );
        let read = tokio::time::timeout(std::time::Duration::from_millis(50), b.request(endless));
        assert!(read.await.is_err(), "the read cannot finish");
        assert_eq!(C.memory.load(Ordering::Relaxed), 0, "memory given back");
        assert_eq!(settled(&C.spilled).await, 0, "spill share given back");
        // A failed read gives back too.
        let failing = StreamBody::new(futures_util::stream::iter([
            Ok(Frame::data(Bytes::from(vec![b'x'; 1500]))),
            Err("peer went away"),
        ]));
        assert!(matches!(b.request(failing).await, Err(Overflow::Body(_))));
        assert_eq!(C.memory.load(Ordering::Relaxed), 0);
        assert_eq!(settled(&C.spilled).await, 0);
        // A kept body holds its shares until its last clone is gone.
        let kept = b.request(chunks(3, 700)).await.unwrap();
        assert_eq!(C.spilled.load(Ordering::Relaxed), 1100);
        assert!(C.memory.load(Ordering::Relaxed) >= 1000);
        let clone = kept.clone();
        drop(kept);
        assert_eq!(read_all(&clone).await.len(), 2100);
        drop(clone);
        assert_eq!(C.memory.load(Ordering::Relaxed), 0);
        assert_eq!(settled(&C.spilled).await, 0);
    }

    /// The next data frame of a replay.
    async fn next(replay: &mut http_body_util::combinators::BoxBody<Bytes, BoxError>) -> Bytes {
        replay.frame().await.unwrap().unwrap().into_data().unwrap()
    }

    #[tokio::test]
    async fn replayed_chunks_hold_a_grant_of_the_memory_budget() {
        static C: Counters = Counters::new();
        let c = BufferingConfig {
            mem_request_body_bytes: Some(1000),
            ..Default::default()
        };
        let b = counted(&c, &bounds(), &C);
        let body = b.request(chunks(10, 10_000)).await.unwrap();
        let mut replay = body.body();
        let mut seen = 0;
        while seen < body.in_memory() {
            seen += next(&mut replay).await.len() as u64;
        }
        let kept = C.memory.load(Ordering::Relaxed);
        let read = next(&mut replay).await;
        assert_eq!(read.len(), 64 * 1024, "a chunk of the spill file");
        assert_eq!(C.memory.load(Ordering::Relaxed), kept + 64 * 1024);
        drop(read);
        assert_eq!(
            C.memory.load(Ordering::Relaxed),
            kept,
            "given back with the bytes"
        );
        drop((replay, body));
        assert_eq!(C.memory.load(Ordering::Relaxed), 0);

        // No room in the budget: small pieces, outside it, and the replay still ends whole.
        static FULL: Counters = Counters::new();
        let full = super::super::Bounds {
            max_buffered_memory: 0,
            ..bounds()
        };
        let b = counted(&BufferingConfig::default(), &full, &FULL);
        let body = b.request(chunks(1, 10_000)).await.unwrap();
        let mut replay = body.body();
        let sizes = [
            next(&mut replay).await.len(),
            next(&mut replay).await.len(),
            next(&mut replay).await.len(),
        ];
        assert_eq!(sizes, [4096, 4096, 1808]);
        assert_eq!(FULL.memory.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn memory_is_granted_before_it_is_allocated() {
        static C: Counters = Counters::new();
        let tight = super::super::Bounds {
            max_buffered_memory: 100_000,
            ..bounds()
        };
        let b = counted(&BufferingConfig::default(), &tight, &C);
        // Declared lengths of 1 MiB each: only what the budget grants is kept in memory, and
        // the counter covers every byte of it (no allocation beyond the grant).
        let mut held = Vec::new();
        for _ in 0..3 {
            let body = Full::new(Bytes::from(vec![b'y'; 1 << 20]));
            let got = b.request(body).await.unwrap();
            assert_eq!(got.len(), 1 << 20);
            assert_eq!(read_all(&got).await, vec![b'y'; 1 << 20]);
            held.push(got);
        }
        let kept: u64 = held.iter().map(Buffered::in_memory).sum();
        assert!(
            kept <= 100_000,
            "{kept} bytes in memory against a 100,000 budget"
        );
        assert!(C.memory.load(Ordering::Relaxed) <= 100_000);
        assert_eq!(
            held[0].in_memory(),
            100_000,
            "the first body had the budget"
        );
        assert_eq!(held[2].in_memory(), 0, "the last found it full");
        // Unknown length, small frames: gathered into blocks, still within the budget.
        drop(held);
        let small = b.request(chunks(500, 100)).await.unwrap();
        assert_eq!(small.in_memory(), 50_000);
        assert_eq!(read_all(&small).await.len(), 50_000);
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
