//! Limiting middlewares: `rateLimit` (token bucket per source), `inFlightReq` (concurrent
//! requests per source) and `retry` (configuration only; the proxy core re-sends).
//!
//! `rateLimit` follows Traefik's use of `golang.org/x/time/rate`: rate = `average / period`,
//! bucket size `burst` (at least 1), a request that would wait longer than `maxDelay`
//! (`1 / (2 * rate)`, 500 ms below 1 req/s) gets 429 with `Retry-After`; a shorter wait is
//! asked of the core through `Ctx::delay`. Buckets live in a bounded LRU table (idle buckets
//! expire after Traefik's TTL; when full, the least recently seen source is evicted).
//! `inFlightReq` counts live requests per source in a table bounded by the same cap; a slot is
//! released when its [`Guard`] (kept in `Ctx::guards`) is dropped. Time comes from `Ctx::now`.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::StatusCode;
use http::header::{HeaderName, HeaderValue, RETRY_AFTER};
use serde::Deserialize;
use serde::de::IgnoredAny;

use super::ip::{Source, SourceCriterionConfig, SourceKey};
use super::util::{self, GoDuration};
use super::{Ctx, Flow, MiddlewareError};

/// Most sources one `rateLimit` or `inFlightReq` middleware tracks at once, by default
/// (`[limits] rate_limit_sources`).
pub const MAX_SOURCES: usize = 10_000;

/// `rateLimit`: `average` requests per `period` (default 1s), bursts of `burst` (default 1).
/// `average = 0` disables limiting. `redis` (distributed limiting) is not supported.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RateLimitConfig {
    #[serde(default, deserialize_with = "util::int")]
    pub average: i64,
    #[serde(default)]
    pub period: Option<GoDuration>,
    #[serde(default, deserialize_with = "util::int")]
    pub burst: i64,
    #[serde(default)]
    pub source_criterion: Option<SourceCriterionConfig>,
    #[serde(default)]
    pub redis: Option<IgnoredAny>,
}

/// `inFlightReq`: at most `amount` simultaneous requests per source (default: request host).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct InFlightReqConfig {
    #[serde(default, deserialize_with = "util::int")]
    pub amount: i64,
    #[serde(default)]
    pub source_criterion: Option<SourceCriterionConfig>,
}

/// `retry`: up to `attempts` tries in all, exponential backoff from `initialInterval`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RetryConfig {
    #[serde(default, deserialize_with = "util::int")]
    pub attempts: i64,
    #[serde(default)]
    pub initial_interval: Option<GoDuration>,
}

// ---------------------------------------------------------------------------------------------
// Bounded LRU table
// ---------------------------------------------------------------------------------------------

/// Per-source tables: bounded, least recently used source evicted.
pub(crate) type Lru<V> = crate::lru::Lru<SourceKey, V>;

// ---------------------------------------------------------------------------------------------
// rateLimit
// ---------------------------------------------------------------------------------------------

struct Bucket {
    tokens: f64,
    last: Instant,
    seen: Instant,
}

pub(crate) struct RateLimit {
    source: Source,
    /// Tokens per second; `None`: no limit.
    rate: Option<f64>,
    burst: f64,
    max_delay: Duration,
    ttl: Duration,
    /// Boxed: the table is large next to the other middlewares of the same enum.
    table: Box<Mutex<Lru<Bucket>>>,
}

impl RateLimit {
    pub(crate) fn compile(
        c: &RateLimitConfig,
        max_sources: usize,
    ) -> Result<Self, MiddlewareError> {
        const KIND: &str = "rateLimit";
        if c.redis.is_some() {
            return Err(MiddlewareError::Unsupported("rateLimit.redis"));
        }
        let source = Source::compile(KIND, c.source_criterion.as_ref(), false)?;
        let period_ns = c.period.map_or(0, |p| p.0);
        if period_ns < 0 {
            return Err(MiddlewareError::invalid(
                KIND,
                "negative value not valid for period",
            ));
        }
        let period_ns = if period_ns == 0 {
            1_000_000_000
        } else {
            period_ns
        };
        let rate = (c.average > 0).then(|| c.average as f64 * 1e9 / period_ns as f64);
        let max_delay = match rate {
            None => Duration::ZERO,
            Some(r) if r < 1.0 => Duration::from_millis(500),
            Some(r) => Duration::from_nanos(1_000_000_000 / ((r as u64).saturating_mul(2)).max(1)),
        };
        let ttl_secs = match rate {
            None => 2,
            Some(r) if r >= 1.0 => 2,
            Some(r) => 1 + (1.0 / r).min(1e9) as u64,
        };
        Ok(RateLimit {
            source,
            rate,
            burst: c.burst.max(1) as f64,
            max_delay,
            ttl: Duration::from_secs(ttl_secs),
            table: Box::new(Mutex::new(Lru::new(max_sources.max(1)))),
        })
    }

    pub(crate) fn on_request(&self, req: &mut http::request::Parts, ctx: &mut Ctx) -> Flow {
        let Some(rate) = self.rate else {
            return Flow::Continue;
        };
        let key = self.source.key(req, ctx);
        let now = ctx.now;
        let delay = {
            let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
            let burst = self.burst;
            let b = table.get_or_insert_with(key, || Bucket {
                tokens: burst,
                last: now,
                seen: now,
            });
            if now.saturating_duration_since(b.seen) > self.ttl {
                *b = Bucket {
                    tokens: burst,
                    last: now,
                    seen: now,
                };
            }
            b.seen = now;
            let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
            b.tokens = (b.tokens + elapsed * rate).min(burst);
            b.last = now;
            let left = b.tokens - 1.0;
            if left >= 0.0 {
                b.tokens = left;
                return Flow::Continue;
            }
            let delay = Duration::from_nanos((-left / rate * 1e9).round().min(1e18) as u64);
            if delay > self.max_delay {
                return Flow::Respond(too_many(delay));
            }
            b.tokens = left;
            delay
        };
        ctx.delay += delay;
        Flow::Continue
    }

    #[cfg(test)]
    pub(crate) fn tracked(&self) -> usize {
        self.table.lock().map_or(0, |t| t.len())
    }
}

fn too_many(delay: Duration) -> http::Response<bytes::Bytes> {
    let status = StatusCode::TOO_MANY_REQUESTS;
    let mut resp = util::text_response(status, util::status_text(status));
    let h = resp.headers_mut();
    h.insert(
        RETRY_AFTER,
        HeaderValue::from(delay.as_secs_f64().ceil() as u64),
    );
    if let Ok(v) = HeaderValue::from_str(&util::format_go_duration(delay)) {
        h.insert(HeaderName::from_static("x-retry-in"), v);
    }
    resp
}

// ---------------------------------------------------------------------------------------------
// inFlightReq
// ---------------------------------------------------------------------------------------------

type Counts = Arc<Mutex<HashMap<SourceKey, i64>>>;

/// Keeps one inFlightReq slot taken; dropping it gives the slot back.
pub struct Guard {
    counts: Counts,
    key: Option<SourceKey>,
}

impl fmt::Debug for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard").field("key", &self.key).finish()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else { return };
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = counts.get_mut(&key) {
            *n -= 1;
            if *n <= 0 {
                counts.remove(&key);
            }
        }
    }
}

pub(crate) struct InFlightReq {
    source: Source,
    amount: i64,
    max_sources: usize,
    counts: Counts,
}

impl InFlightReq {
    pub(crate) fn compile(
        c: &InFlightReqConfig,
        max_sources: usize,
    ) -> Result<Self, MiddlewareError> {
        Ok(InFlightReq {
            source: Source::compile("inFlightReq", c.source_criterion.as_ref(), true)?,
            amount: c.amount,
            max_sources: max_sources.max(1),
            counts: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    pub(crate) fn on_request(&self, req: &mut http::request::Parts, ctx: &mut Ctx) -> Flow {
        let key = self.source.key(req, ctx);
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let current = counts.get(&key).copied();
        let full = current.is_none() && counts.len() >= self.max_sources;
        if current.unwrap_or(0) >= self.amount || full {
            let body = format!("max connections reached: {}", self.amount);
            return Flow::Respond(util::text_response(StatusCode::TOO_MANY_REQUESTS, body));
        }
        *counts.entry(key.clone()).or_insert(0) += 1;
        drop(counts);
        ctx.guards.push(Guard {
            counts: Arc::clone(&self.counts),
            key: Some(key),
        });
        Flow::Continue
    }

    #[cfg(test)]
    pub(crate) fn tracked(&self) -> usize {
        self.counts.lock().map_or(0, |c| c.len())
    }
}

// ---------------------------------------------------------------------------------------------
// retry
// ---------------------------------------------------------------------------------------------

pub(crate) struct Retry {
    pub(crate) attempts: u32,
    pub(crate) initial_interval: Duration,
}

impl Retry {
    pub(crate) fn compile(c: &RetryConfig) -> Result<Self, MiddlewareError> {
        if c.attempts <= 0 {
            return Err(MiddlewareError::invalid(
                "retry",
                format!("incorrect (or empty) value for attempt ({})", c.attempts),
            ));
        }
        let ns = c.initial_interval.map_or(0, |d| d.0);
        if ns < 0 {
            return Err(MiddlewareError::invalid(
                "retry",
                "negative initialInterval",
            ));
        }
        Ok(Retry {
            attempts: u32::try_from(c.attempts).unwrap_or(u32::MAX),
            initial_interval: Duration::from_nanos(ns as u64),
        })
    }
}
