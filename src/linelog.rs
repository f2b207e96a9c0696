//! Line logs that must never slow the request or query path (the proxy's access log, the DNS
//! query log): one task drains a bounded queue of finished lines and writes them in batches to a
//! file (append) or standard output; and the UTC timestamps those lines carry, computed without a
//! time-zone database. Producers use `try_send` and count what they drop; nothing here blocks
//! them.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, watch};

/// Largest batch written at once.
const BATCH: usize = 64 * 1024;

/// Write every line received on `rx` to `path` (standard output when None) until every sender is
/// gone or `stop` flips. `what` names the log in error messages.
pub async fn write_lines(
    mut rx: mpsc::Receiver<String>,
    path: Option<PathBuf>,
    what: &'static str,
    mut stop: Option<watch::Receiver<bool>>,
) {
    let mut out: Box<dyn tokio::io::AsyncWrite + Unpin + Send> = match &path {
        Some(p) => match tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .await
        {
            Ok(f) => Box::new(f),
            Err(e) => {
                tracing::error!(log = what, path = %p.display(), error = %e, "cannot open the log file; writing to stdout");
                Box::new(tokio::io::stdout())
            }
        },
        None => Box::new(tokio::io::stdout()),
    };
    let mut buf = Vec::with_capacity(4096);
    loop {
        let first = match stop.as_mut() {
            Some(stop) => tokio::select! {
                l = rx.recv() => l,
                _ = stop.changed() => None,
            },
            None => rx.recv().await,
        };
        let Some(first) = first else { break };
        buf.extend_from_slice(first.as_bytes());
        while buf.len() < BATCH {
            match rx.try_recv() {
                Ok(more) => buf.extend_from_slice(more.as_bytes()),
                Err(_) => break,
            }
        }
        if let Err(e) = out.write_all(&buf).await {
            tracing::warn!(log = what, error = %e, "log write failed");
        }
        let _ = out.flush().await;
        buf.clear();
    }
}

/// A UTC instant split into calendar fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utc {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u64,
    pub minute: u64,
    pub second: u64,
    pub millis: u32,
}

impl Utc {
    pub fn from(t: SystemTime) -> Utc {
        let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = d.as_secs();
        // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
        let z = (secs / 86_400) as i64 + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let rem = secs % 86_400;
        Utc {
            year: yoe + era * 400 + i64::from(month <= 2),
            month,
            day,
            hour: rem / 3600,
            minute: rem % 3600 / 60,
            second: rem % 60,
            millis: d.subsec_millis(),
        }
    }

    /// `YYYY-MM-DDTHH:MM:SSZ`.
    pub fn rfc3339(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }

    /// `YYYY-MM-DDTHH:MM:SS.mmmZ`.
    pub fn rfc3339_millis(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second, self.millis
        )
    }

    /// Common Log Format: `10/Oct/2000:13:55:36 +0000`.
    pub fn clf(&self) -> String {
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        let mon = MONTHS[(self.month as usize).saturating_sub(1) % 12];
        format!(
            "{:02}/{mon}/{}:{:02}:{:02}:{:02} +0000",
            self.day, self.year, self.hour, self.minute, self.second
        )
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm): the
/// parsers of dates in certificates and in the Docker API share it.
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates() {
        let t = UNIX_EPOCH + Duration::from_secs(971_189_736); // 2000-10-10T14:55:36Z
        assert_eq!(Utc::from(t).clf(), "10/Oct/2000:14:55:36 +0000");
        assert_eq!(Utc::from(t).rfc3339_millis(), "2000-10-10T14:55:36.000Z");
        let leap = UNIX_EPOCH + Duration::from_secs(1_709_164_800); // 2024-02-29
        assert_eq!(Utc::from(leap).rfc3339(), "2024-02-29T00:00:00Z");
        assert_eq!(Utc::from(UNIX_EPOCH).rfc3339(), "1970-01-01T00:00:00Z");
    }
}
