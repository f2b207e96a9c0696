//! `circuitBreaker`: stop sending requests to a service that is failing, as Traefik's (vulcand
//! oxy's cbreaker) does.
//!
//! Three states. **Standby**: requests pass; each answer is recorded in rolling windows (status
//! codes and 502/504 "network errors" over 10 s, latencies over 60 s) and, at most once per
//! `checkPeriod`, the expression is evaluated; true trips the breaker and clears the windows.
//! **Tripped**: every request gets `responseCode` (503) for `fallbackDuration`. **Recovering**:
//! for `recoveryDuration`, a growing share of requests passes (from none to half, linearly, as
//! oxy's ratio controller); the expression can trip it again; afterwards it is standby.
//!
//! An answer is recorded when its head reaches the breaker (status and time to first byte), not
//! when its body ends: a streamed download or an event stream is not a slow answer. Memory is
//! fixed per breaker: 10 one-second counters, at most [`MAX_CODES`] distinct status codes (others are not counted), and a
//! log-linear latency histogram of [`LAT_BUCKETS`] buckets for each of 6 ten-second slots.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use http::StatusCode;
use serde::Deserialize;

use super::expr::{Call, Expr, Func, Ret, Value};
use super::util::{self, GoDuration};
use super::{Ctx, Flow, MiddlewareError};

const KIND: &str = "circuitBreaker";

/// `[http.middlewares.NAME.circuitBreaker]`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CircuitBreakerConfig {
    #[serde(default, deserialize_with = "util::scalar_string")]
    pub expression: String,
    #[serde(default)]
    pub check_period: Option<GoDuration>,
    #[serde(default)]
    pub fallback_duration: Option<GoDuration>,
    #[serde(default)]
    pub recovery_duration: Option<GoDuration>,
    #[serde(default, deserialize_with = "util::opt_int")]
    pub response_code: Option<i64>,
}

const FUNCS: &[Func] = &[
    Func {
        name: "NetworkErrorRatio",
        arity: 0,
        ret: Ret::Num,
    },
    Func {
        name: "ResponseCodeRatio",
        arity: 4,
        ret: Ret::Num,
    },
    Func {
        name: "LatencyAtQuantileMS",
        arity: 1,
        ret: Ret::Num,
    },
    Func {
        name: "RequestThreshold",
        arity: 0,
        ret: Ret::Num,
    },
];

/// Distinct status codes counted in the window (answers with others count only in the total).
pub const MAX_CODES: usize = 32;
/// Latency histogram buckets: exact below 32 µs, then 16 per power of two up to about an hour
/// (a bucket's middle is within 3.125 % of any latency in it).
pub const LAT_BUCKETS: usize = 32 + 27 * 16;
const COUNTER_SLOTS: usize = 10;
const LAT_SLOTS: usize = 6;
const LAT_SLOT_SECS: u64 = 10;

pub struct CircuitBreaker {
    expr: Expr,
    check_period: Duration,
    fallback: Duration,
    recovery: Duration,
    code: StatusCode,
    epoch: Instant,
    state: Mutex<State>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Standby,
    Tripped {
        until: Instant,
    },
    Recovering {
        until: Instant,
        start: Instant,
        allowed: u64,
        denied: u64,
    },
}

struct State {
    mode: Mode,
    next_check: Instant,
    win: Window,
}

/// The rolling windows the expression reads.
struct Window {
    /// Second (since the breaker's epoch) of the newest counter slot.
    sec: u64,
    total: [u32; COUNTER_SLOTS],
    net: [u32; COUNTER_SLOTS],
    codes: Vec<(u16, [u32; COUNTER_SLOTS])>,
    /// Ten-second period of the newest latency slot.
    period: u64,
    lat: Box<[[u32; LAT_BUCKETS]; LAT_SLOTS]>,
}

impl Window {
    fn new() -> Self {
        Window {
            sec: 0,
            total: [0; COUNTER_SLOTS],
            net: [0; COUNTER_SLOTS],
            codes: Vec::new(),
            period: 0,
            lat: Box::new([[0; LAT_BUCKETS]; LAT_SLOTS]),
        }
    }

    /// Move the windows to `sec`, clearing the slots that fell out.
    fn advance(&mut self, sec: u64) {
        let gap = sec.saturating_sub(self.sec).min(COUNTER_SLOTS as u64);
        for s in 1..=gap {
            let i = ((self.sec + s) % COUNTER_SLOTS as u64) as usize;
            self.total[i] = 0;
            self.net[i] = 0;
            for (_, c) in &mut self.codes {
                c[i] = 0;
            }
        }
        self.codes.retain(|(_, c)| c.iter().any(|&n| n > 0));
        self.sec = self.sec.max(sec);
        let period = sec / LAT_SLOT_SECS;
        let gap = period.saturating_sub(self.period).min(LAT_SLOTS as u64);
        for p in 1..=gap {
            self.lat[((self.period + p) % LAT_SLOTS as u64) as usize] = [0; LAT_BUCKETS];
        }
        self.period = self.period.max(period);
    }

    fn record(&mut self, code: u16, latency: Duration) {
        let i = (self.sec % COUNTER_SLOTS as u64) as usize;
        self.total[i] += 1;
        if code == 502 || code == 504 {
            self.net[i] += 1;
        }
        match self.codes.iter().position(|(c, _)| *c == code) {
            Some(at) => self.codes[at].1[i] += 1,
            None if self.codes.len() < MAX_CODES => {
                let mut n = [0; COUNTER_SLOTS];
                n[i] = 1;
                self.codes.push((code, n));
            }
            None => {}
        }
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let slot = (self.period % LAT_SLOTS as u64) as usize;
        self.lat[slot][lat_bucket(micros)] += 1;
    }

    fn reset(&mut self) {
        self.total = [0; COUNTER_SLOTS];
        self.net = [0; COUNTER_SLOTS];
        self.codes.clear();
        *self.lat = [[0; LAT_BUCKETS]; LAT_SLOTS];
    }

    fn total(&self) -> u64 {
        self.total.iter().map(|&n| u64::from(n)).sum()
    }

    fn network_error_ratio(&self) -> f64 {
        let total = self.total();
        if total == 0 {
            return 0.0;
        }
        self.net.iter().map(|&n| u64::from(n)).sum::<u64>() as f64 / total as f64
    }

    /// Answers with a code in `[a0, a1)` over answers with a code in `[b0, b1)`.
    fn code_ratio(&self, a: (f64, f64), b: (f64, f64)) -> f64 {
        let (mut num, mut den) = (0u64, 0u64);
        for (code, n) in &self.codes {
            let c = f64::from(*code);
            let sum: u64 = n.iter().map(|&x| u64::from(x)).sum();
            if c >= a.0 && c < a.1 {
                num += sum;
            }
            if c >= b.0 && c < b.1 {
                den += sum;
            }
        }
        if den == 0 {
            0.0
        } else {
            num as f64 / den as f64
        }
    }

    /// Latency at `percent` (0..=100) in whole milliseconds, from the histogram.
    fn latency_ms(&self, percent: f64) -> f64 {
        let mut merged = [0u64; LAT_BUCKETS];
        for slot in self.lat.iter() {
            for (m, &n) in merged.iter_mut().zip(slot.iter()) {
                *m += u64::from(n);
            }
        }
        let total: u64 = merged.iter().sum();
        if total == 0 {
            return 0.0;
        }
        let want = ((percent.clamp(0.0, 100.0) / 100.0) * total as f64)
            .ceil()
            .max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in merged.iter().enumerate() {
            seen += n;
            if seen >= want {
                return (bucket_middle(i) / 1000) as f64;
            }
        }
        0.0
    }
}

/// The histogram bucket of a latency in microseconds.
fn lat_bucket(micros: u64) -> usize {
    if micros < 32 {
        return micros as usize;
    }
    let exp = 63 - micros.leading_zeros() as usize; // >= 5
    let sub = ((micros >> (exp - 4)) & 15) as usize;
    (32 + (exp - 5) * 16 + sub).min(LAT_BUCKETS - 1)
}

/// The lowest and highest latency (µs) that fall into bucket `i`.
fn bucket_range(i: usize) -> (u64, u64) {
    if i < 32 {
        return (i as u64, i as u64);
    }
    let exp = (i - 32) / 16 + 5;
    let sub = ((i - 32) % 16) as u64;
    ((16 + sub) << (exp - 4), ((17 + sub) << (exp - 4)) - 1)
}

/// The latency a bucket stands for: its middle.
fn bucket_middle(i: usize) -> u64 {
    let (lo, hi) = bucket_range(i);
    lo + (hi - lo) / 2
}

fn positive(d: Option<GoDuration>, default: Duration) -> Duration {
    match d {
        Some(GoDuration(ns)) if ns > 0 => Duration::from_nanos(ns as u64),
        _ => default,
    }
}

impl CircuitBreaker {
    pub fn compile(c: &CircuitBreakerConfig) -> Result<Self, MiddlewareError> {
        let expr = Expr::parse(&c.expression, FUNCS)
            .map_err(|why| MiddlewareError::invalid(KIND, format!("expression: {why}")))?;
        let code = match c.response_code {
            None | Some(0) => StatusCode::SERVICE_UNAVAILABLE,
            Some(n) => u16::try_from(n)
                .ok()
                .filter(|n| (200..=599).contains(n))
                .and_then(|n| StatusCode::from_u16(n).ok())
                .ok_or_else(|| {
                    MiddlewareError::invalid(KIND, format!("responseCode {n} is not 200..599"))
                })?,
        };
        let now = Instant::now();
        Ok(CircuitBreaker {
            expr,
            check_period: positive(c.check_period, Duration::from_millis(100)),
            fallback: positive(c.fallback_duration, Duration::from_secs(10)),
            recovery: positive(c.recovery_duration, Duration::from_secs(10)),
            code,
            epoch: now,
            state: Mutex::new(State {
                mode: Mode::Standby,
                next_check: now,
                win: Window::new(),
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Pass the request on (noting when, for its latency), or answer with the fallback while
    /// tripped or recovering.
    pub fn on_request(&self, id: u64, ctx: &mut Ctx) -> Flow {
        if self.allow(ctx.now) {
            ctx.breaker_starts.push((id, Instant::now()));
            return Flow::Continue;
        }
        let text = util::status_text(self.code);
        Flow::Respond(util::text_response(self.code, text))
    }

    fn allow(&self, now: Instant) -> bool {
        let mut st = self.lock();
        if let Mode::Tripped { until } = st.mode {
            if now < until {
                return false;
            }
            st.mode = Mode::Recovering {
                until: now + self.recovery,
                start: now,
                allowed: 0,
                denied: 0,
            };
        }
        let Mode::Recovering {
            until,
            start,
            allowed,
            denied,
        } = &mut st.mode
        else {
            return true;
        };
        if now > *until {
            st.mode = Mode::Standby;
            return true;
        }
        // oxy's ratio controller: let this one through while the share let through stays
        // under the target, which grows from 0 to 1/2 over the recovery.
        let target = 0.5 * now.duration_since(*start).as_secs_f64() / self.recovery.as_secs_f64();
        let would_be = (*allowed + 1) as f64 / (*allowed + 1 + *denied) as f64;
        if would_be < target {
            *allowed += 1;
            true
        } else {
            *denied += 1;
            false
        }
    }

    /// Record an answer that went through the breaker, then check the expression when due.
    pub fn on_response(&self, id: u64, ctx: &Ctx, status: StatusCode) {
        let now = Instant::now();
        let started = (ctx.breaker_starts.iter())
            .find(|(i, _)| *i == id)
            .map_or(ctx.now, |(_, t)| *t);
        let mut st = self.lock();
        st.win.advance(now.duration_since(self.epoch).as_secs());
        st.win
            .record(status.as_u16(), now.saturating_duration_since(started));
        if now < st.next_check {
            return;
        }
        st.next_check = now + self.check_period;
        if matches!(st.mode, Mode::Tripped { .. }) {
            return;
        }
        if self.expr.eval(&|c: &Call| value(&st.win, c)) {
            tracing::warn!(
                fallback = ?self.fallback,
                "circuitBreaker tripped: answering {} until the fallback duration has passed",
                self.code.as_u16()
            );
            st.mode = Mode::Tripped {
                until: now + self.fallback,
            };
            st.win.reset();
        }
    }

    /// `"standby"`, `"tripped"` or `"recovering"`, for the API.
    pub fn state(&self) -> &'static str {
        match self.lock().mode {
            Mode::Standby => "standby",
            Mode::Tripped { .. } => "tripped",
            Mode::Recovering { .. } => "recovering",
        }
    }
}

fn value(w: &Window, c: &Call) -> Value<'static> {
    let a = &c.args;
    Value::Num(match c.func {
        0 => w.network_error_ratio(),
        1 => w.code_ratio((a[0], a[1]), (a[2], a[3])),
        2 => w.latency_ms(a[0]),
        _ => w.total() as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(expr: &str) -> CircuitBreaker {
        breaker_falling_back(expr, 50_000_000)
    }

    fn breaker_falling_back(expr: &str, fallback_ns: i64) -> CircuitBreaker {
        CircuitBreaker::compile(&CircuitBreakerConfig {
            expression: expr.into(),
            check_period: Some(GoDuration(1)),
            fallback_duration: Some(GoDuration(fallback_ns)),
            recovery_duration: Some(GoDuration(2_000_000_000)),
            response_code: None,
        })
        .unwrap()
    }

    fn ctx() -> Ctx {
        Ctx::new("127.0.0.1".parse().unwrap(), "http", Instant::now())
    }

    fn answer(cb: &CircuitBreaker, code: u16) {
        std::thread::sleep(Duration::from_millis(2));
        cb.on_response(1, &ctx(), StatusCode::from_u16(code).unwrap());
    }

    #[test]
    fn trips_on_network_errors_recovers_and_trips_again() {
        // A fallback of 10 s: the fallback answer below comes well within it however slow the
        // machine; recovery is then driven on the requests' own clock.
        let cb = breaker_falling_back("NetworkErrorRatio() > 0.5", 10_000_000_000);
        answer(&cb, 200);
        answer(&cb, 502);
        assert_eq!(cb.state(), "standby", "1 of 2 is not over half");
        answer(&cb, 504);
        assert_eq!(cb.state(), "tripped");
        match cb.on_request(1, &mut ctx()) {
            Flow::Respond(r) => {
                assert_eq!(r.status(), 503);
                assert_eq!(r.body().as_ref(), b"Service Unavailable");
            }
            other => panic!("not the fallback: {other:?}"),
        }
        // Recovering (2 s), on the requests' own clock (no sleeping: a loaded machine cannot
        // change the outcome): a share growing from none towards half passes.
        let recovery_starts = Instant::now() + Duration::from_millis(10_100);
        let passed_between = |from_ms: u64, n: u64| {
            (0..n)
                .filter(|k| {
                    let at = recovery_starts + Duration::from_millis(from_ms + k * 5);
                    let mut c = Ctx::new("127.0.0.1".parse().unwrap(), "http", at);
                    matches!(cb.on_request(1, &mut c), Flow::Continue)
                })
                .count()
        };
        // The first 200 ms: the target share is at most 5 %, so 1 or 2 of 40.
        let early = passed_between(0, 40);
        assert_eq!(cb.state(), "recovering");
        assert!((1..=2).contains(&early), "{early} of 40 passed early");
        // Near the end (target 45-50 %) the share let through since the start catches up.
        let late = passed_between(1800, 40);
        let share = (early + late) as f64 / 80.0;
        assert!(
            (0.44..=0.5).contains(&share),
            "{early} + {late} of 80 passed"
        );
        // Failing again while recovering trips it again.
        for _ in 0..3 {
            answer(&cb, 502);
        }
        assert_eq!(cb.state(), "tripped");
    }

    #[test]
    fn code_ratio_and_threshold() {
        let cb = breaker("ResponseCodeRatio(500, 600, 0, 600) > 0.25 && RequestThreshold() >= 4");
        for code in [200, 200, 500] {
            answer(&cb, code);
        }
        assert_eq!(cb.state(), "standby", "3 answers are under the threshold");
        answer(&cb, 500);
        assert_eq!(cb.state(), "tripped", "2 of 4 is over 0.25");
    }

    #[test]
    fn latency_histogram() {
        for v in [0, 1, 31, 32, 33, 100, 1000, 99_999, 123_456, 3_600_000_000] {
            let (lo, hi) = bucket_range(lat_bucket(v));
            assert!(lo <= v && v <= hi, "{v} outside its bucket {lo}..={hi}");
            let mid = bucket_middle(lat_bucket(v)) as f64;
            assert!(
                (mid - v as f64).abs() <= v as f64 * 0.035 + 1.0,
                "{v}: {mid}"
            );
        }
        let mut w = Window::new();
        for ms in 1..=100u64 {
            w.record(200, Duration::from_millis(ms));
        }
        let p50 = w.latency_ms(50.0);
        assert!((49.0..=52.0).contains(&p50), "p50 {p50}");
        assert!(w.latency_ms(100.0) >= 99.0);
        // 99 ms everywhere is not "over 100 ms".
        let mut w = Window::new();
        for _ in 0..10 {
            w.record(200, Duration::from_millis(99));
        }
        let p50 = w.latency_ms(50.0);
        assert!((97.0..=100.0).contains(&p50), "p50 {p50}");
    }

    #[test]
    fn bad_configuration() {
        for (expr, code) in [
            ("", None),
            ("Foo() > 1", None),
            ("NetworkErrorRatio() > 1", Some(42)),
        ] {
            let c = CircuitBreakerConfig {
                expression: expr.into(),
                response_code: code,
                ..Default::default()
            };
            assert!(CircuitBreaker::compile(&c).is_err(), "{expr:?} {code:?}");
        }
    }
}
