//! The optional query log (dnsmasq's `log-queries`): one line per answered query, written by one
//! background task so the query path never waits on a disk. The queue is bounded; when it is
//! full, lines are dropped and counted, never blocking a query.
//!
//! Line: `2026-01-31T12:00:00Z 10.0.0.23 udp www.example.org. A NOERROR cache 2 0ms` (time UTC,
//! client, transport, name, type, result, where the answer came from, answer count, time spent).

use std::io::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, watch};

/// Lines waiting for the writer at most.
pub const QUEUE: usize = 4096;

/// Where an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Local,
    Cache,
    Upstream,
    Stale,
    /// Refused, dropped by a rule (domain-needed, bogus-priv) or failed.
    Policy,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Source::Local => "local",
            Source::Cache => "cache",
            Source::Upstream => "upstream",
            Source::Stale => "stale",
            Source::Policy => "policy",
        }
    }
}

/// What one line says.
pub struct Entry<'a> {
    pub client: IpAddr,
    pub tcp: bool,
    pub name: &'a str,
    pub qtype: &'a str,
    pub rcode: &'a str,
    pub source: Source,
    pub answers: usize,
    pub elapsed: Duration,
}

/// Cheap to clone handle on the writer.
#[derive(Clone)]
pub struct QueryLog {
    tx: mpsc::Sender<String>,
    dropped: Arc<AtomicU64>,
}

impl QueryLog {
    /// The handle and the writer task (to be spawned; it ends on `stop` or when every handle is
    /// gone). `path` None writes to standard output.
    pub fn new(
        path: Option<PathBuf>,
        stop: watch::Receiver<bool>,
    ) -> (
        QueryLog,
        impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let log = QueryLog {
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
        };
        (
            log,
            crate::linelog::write_lines(rx, path, "DNS query log", Some(stop)),
        )
    }

    /// Queue a line; drops (and counts) it when the writer is behind.
    pub fn write(&self, e: &Entry<'_>) {
        let line = line(e, SystemTime::now());
        if self.tx.try_send(line).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Lines dropped because the writer could not keep up.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

fn line(e: &Entry<'_>, now: SystemTime) -> String {
    let mut out = Vec::with_capacity(128);
    let _ = writeln!(
        out,
        "{} {} {} {} {} {} {} {} {}ms",
        utc(now),
        e.client,
        if e.tcp { "tcp" } else { "udp" },
        e.name,
        e.qtype,
        e.rcode,
        e.source.as_str(),
        e.answers,
        e.elapsed.as_millis()
    );
    String::from_utf8_lossy(&out).into_owned()
}

/// `YYYY-MM-DDTHH:MM:SSZ`.
fn utc(t: SystemTime) -> String {
    crate::linelog::Utc::from(t).rfc3339()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn formats_a_line() {
        let e = Entry {
            client: IpAddr::from([10, 0, 0, 23]),
            tcp: false,
            name: "www.example.org.",
            qtype: "A",
            rcode: "NOERROR",
            source: Source::Cache,
            answers: 2,
            elapsed: Duration::from_micros(1500),
        };
        let t = UNIX_EPOCH + Duration::from_secs(1_769_860_800); // 2026-01-31T12:00:00Z
        assert_eq!(
            line(&e, t),
            "2026-01-31T12:00:00Z 10.0.0.23 udp www.example.org. A NOERROR cache 2 1ms\n"
        );
        assert_eq!(utc(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            utc(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts() {
        let (_stop_tx, stop) = watch::channel(false);
        let (log, _writer) = QueryLog::new(None, stop); // writer not running: nothing drains
        let e = Entry {
            client: IpAddr::from([127, 0, 0, 1]),
            tcp: true,
            name: "a.",
            qtype: "A",
            rcode: "NOERROR",
            source: Source::Local,
            answers: 1,
            elapsed: Duration::ZERO,
        };
        for _ in 0..QUEUE + 5 {
            log.write(&e);
        }
        assert_eq!(log.dropped(), 5);
    }
}
