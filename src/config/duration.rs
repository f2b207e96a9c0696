//! Durations as Traefik reads them: Go duration strings (`"500ms"`, `"1m30s"`, `"1.5h"`, `"-1s"`)
//! or bare integers meaning seconds (`42` and `"42"` are both 42 s), held like Go's
//! `time.Duration` (signed nanoseconds) and written back the way Go prints them.
//!
//! This module only converts; what a zero or negative value means (usually "no timeout" and
//! "flush at once") is decided by the settings that use it. It must not read the clock.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

const NANOS_PER_SEC: i64 = 1_000_000_000;

/// A signed span of time with nanosecond precision and Go's range (about ±292 years).
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(i64);

impl fmt::Debug for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Duration({self})")
    }
}

/// Why a duration could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Nothing was given.
    #[error("empty duration")]
    Empty,
    /// Not of the form `[-]<number><unit>...`.
    #[error("invalid duration `{0}`: use a number of seconds or a Go duration like \"1m30s\"")]
    Invalid(String),
    /// A number without its unit, e.g. `"1.5"`.
    #[error("missing unit in duration `{0}`: use one of ns, us, ms, s, m, h (e.g. \"1.5s\")")]
    MissingUnit(String),
    /// A unit that Go does not know, e.g. `"3d"`.
    #[error("unknown unit `{unit}` in duration `{input}`: use one of ns, us, ms, s, m, h")]
    UnknownUnit {
        /// The unit as written.
        unit: String,
        /// The whole duration as written.
        input: String,
    },
    /// Beyond about 292 years.
    #[error("duration `{0}` is too large")]
    Overflow(String),
}

impl Duration {
    /// No time at all.
    pub const ZERO: Self = Self(0);

    /// `n` nanoseconds.
    pub const fn from_nanos(n: i64) -> Self {
        Self(n)
    }

    /// `ms` milliseconds, saturating at Go's range.
    pub const fn from_millis(ms: i64) -> Self {
        Self(ms.saturating_mul(1_000_000))
    }

    /// `secs` seconds, saturating at Go's range.
    pub const fn from_secs(secs: i64) -> Self {
        Self(secs.saturating_mul(NANOS_PER_SEC))
    }

    /// The length in nanoseconds (negative for negative durations).
    pub const fn as_nanos(self) -> i64 {
        self.0
    }

    /// True for a zero length.
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// True for a negative length (meaningful for a few Traefik settings, e.g. `flushInterval`).
    pub const fn is_negative(self) -> bool {
        self.0 < 0
    }

    /// As a `std` duration; negative values become zero.
    pub fn to_std(self) -> std::time::Duration {
        std::time::Duration::from_nanos(u64::try_from(self.0).unwrap_or(0))
    }

    /// As a timeout, following Traefik's rule that zero (or less) means "no timeout".
    pub fn as_timeout(self) -> Option<std::time::Duration> {
        (self.0 > 0).then(|| self.to_std())
    }

    /// Reads a duration the way Traefik does: a base-10 integer is seconds, anything else must be
    /// a Go duration string.
    pub fn parse(s: &str) -> Result<Self, DurationError> {
        if let Ok(secs) = s.parse::<i64>() {
            return secs
                .checked_mul(NANOS_PER_SEC)
                .map(Self)
                .ok_or_else(|| DurationError::Overflow(s.to_owned()));
        }
        parse_go(s).map(Self)
    }
}

impl From<std::time::Duration> for Duration {
    /// Saturates at Go's range (about 292 years).
    fn from(d: std::time::Duration) -> Self {
        Self(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
    }
}

impl FromStr for Duration {
    type Err = DurationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Go's `time.ParseDuration`: `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+`, or `"0"`.
fn parse_go(input: &str) -> Result<i64, DurationError> {
    let invalid = || DurationError::Invalid(input.to_owned());
    let overflow = || DurationError::Overflow(input.to_owned());
    let (neg, mut s) = match input.as_bytes().first() {
        None => return Err(DurationError::Empty),
        Some(b'-') => (true, &input[1..]),
        Some(b'+') => (false, &input[1..]),
        Some(_) => (false, input),
    };
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: u64 = 0;
    while !s.is_empty() {
        // Integer part.
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let mut whole: u64 = 0;
        for b in s[..int_len].bytes() {
            whole = whole
                .checked_mul(10)
                .and_then(|w| w.checked_add(u64::from(b - b'0')))
                .filter(|w| *w <= LIMIT)
                .ok_or_else(invalid)?;
        }
        s = &s[int_len..];
        let (mut frac, mut scale, mut frac_len) = (0, 1.0, 0);
        if let Some(rest) = s.strip_prefix('.') {
            frac_len = rest.bytes().take_while(u8::is_ascii_digit).count();
            (frac, scale) = parse_fraction(&rest[..frac_len]);
            s = &rest[frac_len..];
        }
        if int_len == 0 && frac_len == 0 {
            return Err(invalid());
        }
        // Unit.
        let unit_len = s
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(s.len());
        if unit_len == 0 {
            return Err(DurationError::MissingUnit(input.to_owned()));
        }
        let unit = &s[..unit_len];
        s = &s[unit_len..];
        let Some(per) = unit_nanos(unit) else {
            return Err(DurationError::UnknownUnit {
                unit: unit.to_owned(),
                input: input.to_owned(),
            });
        };
        let mut v = whole
            .checked_mul(per)
            .filter(|v| *v <= LIMIT)
            .ok_or_else(overflow)?;
        if frac > 0 {
            // Float arithmetic as in Go; the result is truncated toward zero.
            #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
            #[allow(clippy::cast_sign_loss)]
            let extra = (frac as f64 * (per as f64 / scale)) as u64;
            v = v
                .checked_add(extra)
                .filter(|v| *v <= LIMIT)
                .ok_or_else(overflow)?;
        }
        total = total
            .checked_add(v)
            .filter(|t| *t <= LIMIT)
            .ok_or_else(overflow)?;
    }
    if neg {
        // -(1 << 63) is i64::MIN, the one value whose magnitude does not fit in i64.
        Ok(0i64.wrapping_sub_unsigned(total))
    } else {
        i64::try_from(total).map_err(|_| overflow())
    }
}

/// The largest magnitude a duration has (that of `i64::MIN` nanoseconds).
const LIMIT: u64 = 1 << 63;

/// A fraction's digits as (numerator, 10^digits kept): digits past u64's precision are
/// consumed and ignored, as in Go.
fn parse_fraction(digits: &str) -> (u64, f64) {
    let (mut frac, mut scale) = (0u64, 1.0f64);
    for b in digits.bytes() {
        match frac
            .checked_mul(10)
            .and_then(|f| f.checked_add(u64::from(b - b'0')))
        {
            Some(f) if f <= LIMIT => {
                frac = f;
                scale *= 10.0;
            }
            _ => break,
        }
    }
    (frac, scale)
}

/// Nanoseconds in one of Go's duration units.
fn unit_nanos(unit: &str) -> Option<u64> {
    Some(match unit {
        "ns" => 1,
        "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return None,
    })
}

impl fmt::Display for Duration {
    /// Go's `time.Duration.String()`: `"0s"`, `"1.5µs"`, `"250ms"`, `"1.5s"`, `"1m30s"`,
    /// `"2h0m0s"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("0s");
        }
        if self.0 < 0 {
            f.write_str("-")?;
        }
        let u = self.0.unsigned_abs();
        if u < 1_000_000_000 {
            let (prec, unit) = match u {
                0..1_000 => return write!(f, "{u}ns"),
                1_000..1_000_000 => (3, "\u{b5}s"),
                _ => (6, "ms"),
            };
            let (frac, int) = fraction(u, prec);
            return write!(f, "{int}{frac}{unit}");
        }
        let (frac, secs) = fraction(u, 9);
        let mins = secs / 60;
        let hours = mins / 60;
        if hours > 0 {
            write!(f, "{hours}h{}m", mins % 60)?;
        } else if mins > 0 {
            write!(f, "{mins}m")?;
        }
        write!(f, "{}{frac}s", secs % 60)
    }
}

/// Splits `v` into `v / 10^prec` and its remainder printed as `.ddd` without trailing zeros (or
/// nothing when the remainder is zero).
fn fraction(v: u64, prec: u32) -> (String, u64) {
    let p = 10u64.pow(prec);
    let rem = v % p;
    if rem == 0 {
        return (String::new(), v / p);
    }
    let width = prec as usize;
    let digits = format!("{rem:0width$}");
    (format!(".{}", digits.trim_end_matches('0')), v / p)
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(DurationVisitor)
    }
}

struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration: seconds as an integer, or a string like \"1m30s\"")
    }

    fn visit_i64<E: de::Error>(self, secs: i64) -> Result<Duration, E> {
        secs.checked_mul(NANOS_PER_SEC)
            .map(Duration)
            .ok_or_else(|| E::custom(DurationError::Overflow(secs.to_string())))
    }

    fn visit_u64<E: de::Error>(self, secs: u64) -> Result<Duration, E> {
        i64::try_from(secs)
            .map_err(|_| E::custom(DurationError::Overflow(secs.to_string())))
            .and_then(|s| self.visit_i64(s))
    }

    /// Traefik prints floats before reading them, so `42.0` is 42 s and `1.5` lacks a unit.
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Duration, E> {
        if v.fract() == 0.0 && v.abs() < 9.2e9 {
            #[allow(clippy::cast_possible_truncation)]
            return self.visit_i64(v as i64);
        }
        Err(E::custom(DurationError::MissingUnit(v.to_string())))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Duration, E> {
        Duration::parse(s).map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NS: i64 = 1;
    const US: i64 = 1_000;
    const MS: i64 = 1_000_000;
    const S: i64 = 1_000_000_000;
    const M: i64 = 60 * S;
    const H: i64 = 60 * M;

    #[test]
    fn parses_like_traefik() {
        let cases: &[(&str, i64)] = &[
            // Bare integers are seconds (Traefik's rule, checked before Go's parser).
            ("0", 0),
            ("42", 42 * S),
            ("-5", -5 * S),
            ("+7", 7 * S),
            // Go duration strings.
            ("0s", 0),
            ("-0", 0),
            ("500ms", 500 * MS),
            ("1m30s", M + 30 * S),
            ("2h", 2 * H),
            ("1.5s", 1500 * MS),
            (".5s", 500 * MS),
            ("5.s", 5 * S),
            (
                "1h2m3s4ms5us6ns",
                H + 2 * M + 3 * S + 4 * MS + 5 * US + 6 * NS,
            ),
            ("3\u{b5}s", 3 * US),
            ("3\u{3bc}s", 3 * US),
            ("-1.5h", -(H + 30 * M)),
            ("+10ms", 10 * MS),
            ("0.000000001s", 1),
            ("2562047h47m16.854775807s", i64::MAX),
            ("-2562047h47m16.854775808s", i64::MIN),
        ];
        for (input, nanos) in cases {
            assert_eq!(Duration::parse(input), Ok(Duration(*nanos)), "{input}");
        }
    }

    #[test]
    fn rejects_what_go_rejects() {
        let cases: &[(&str, DurationError)] = &[
            ("", DurationError::Empty),
            ("-", DurationError::Invalid("-".into())),
            (".s", DurationError::Invalid(".s".into())),
            ("s", DurationError::Invalid("s".into())),
            ("1.5", DurationError::MissingUnit("1.5".into())),
            ("1s5", DurationError::MissingUnit("1s5".into())),
            (
                "1 s",
                DurationError::UnknownUnit {
                    unit: " s".into(),
                    input: "1 s".into(),
                },
            ),
            (
                "3d",
                DurationError::UnknownUnit {
                    unit: "d".into(),
                    input: "3d".into(),
                },
            ),
            (
                "1S",
                DurationError::UnknownUnit {
                    unit: "S".into(),
                    input: "1S".into(),
                },
            ),
            ("2562048h", DurationError::Overflow("2562048h".into())),
            (
                "9223372036854775807",
                DurationError::Overflow("9223372036854775807".into()),
            ),
        ];
        for (input, err) in cases {
            assert_eq!(Duration::parse(input).as_ref(), Err(err), "{input}");
        }
    }

    #[test]
    fn prints_like_go() {
        let cases: &[(i64, &str)] = &[
            (0, "0s"),
            (1, "1ns"),
            (999, "999ns"),
            (1_500, "1.5\u{b5}s"),
            (250 * MS, "250ms"),
            (1_500 * MS, "1.5s"),
            (S, "1s"),
            (M, "1m0s"),
            (M + 30 * S, "1m30s"),
            (2 * H, "2h0m0s"),
            (H + 2 * M + 3 * S + 4 * MS, "1h2m3.004s"),
            (-(1_500 * MS), "-1.5s"),
            (i64::MAX, "2562047h47m16.854775807s"),
            (i64::MIN, "-2562047h47m16.854775808s"),
        ];
        for (nanos, text) in cases {
            let d = Duration(*nanos);
            assert_eq!(d.to_string(), *text, "{nanos}");
            assert_eq!(Duration::parse(text), Ok(d), "round trip of {text}");
        }
    }

    #[test]
    fn converts_to_std_and_timeouts() {
        assert_eq!(
            Duration::from_secs(3).to_std(),
            std::time::Duration::from_secs(3)
        );
        assert_eq!(Duration::from_secs(-3).to_std(), std::time::Duration::ZERO);
        assert_eq!(Duration::ZERO.as_timeout(), None);
        assert_eq!(Duration::from_millis(-1).as_timeout(), None);
        assert_eq!(
            Duration::from_millis(5).as_timeout(),
            Some(std::time::Duration::from_millis(5))
        );
        assert_eq!(
            Duration::from(std::time::Duration::from_millis(7)),
            Duration::from_millis(7)
        );
    }
}
