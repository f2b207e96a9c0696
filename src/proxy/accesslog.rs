//! The optional access log: one line per request, in Traefik's common log format or as JSON,
//! written by one background task so the request path never waits on a disk (an SD card can stall
//! for seconds). The queue is bounded; when it is full, lines are dropped and counted, never
//! blocking a request. Traefik's `filters` (status codes, retried, slow) choose which requests
//! are logged; its `fields` modes (keep, drop, redact) shape JSON lines, request headers
//! included (dropped unless asked for).

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime};

use tokio::sync::mpsc;

use crate::linelog::Utc;

/// Everything one access-log line says.
#[derive(Debug, Clone)]
pub struct Record {
    pub client: IpAddr,
    pub method: String,
    pub path: String,
    pub proto: &'static str,
    pub status: u16,
    pub size: u64,
    pub referer: String,
    pub user_agent: String,
    pub router: String,
    pub server_url: String,
    pub started: Instant,
    pub started_wall: SystemTime,
    pub entrypoint: String,
    /// Upstream attempts (more than 1 when retried).
    pub attempts: u32,
    /// Request headers kept by the `fields.headers` modes (value already redacted if asked).
    pub headers: Vec<(String, String)>,
}

/// Which requests are logged (`accessLog.filters`); no filter logs everything.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub status_ranges: Vec<(u16, u16)>,
    pub retry_attempts: bool,
    pub min_duration: Option<std::time::Duration>,
}

impl Filter {
    /// Parse Traefik's `statusCodes` entries: `"404"` or `"500-599"`.
    pub fn parse_status(codes: &[String]) -> Result<Vec<(u16, u16)>, String> {
        codes
            .iter()
            .map(|c| {
                let (a, b) = c.split_once('-').unwrap_or((c, c));
                match (a.trim().parse::<u16>(), b.trim().parse::<u16>()) {
                    (Ok(lo), Ok(hi)) if lo <= hi => Ok((lo, hi)),
                    _ => Err(format!(
                        "accessLog.filters.statusCodes: `{c}` is not a code or a range like 500-599"
                    )),
                }
            })
            .collect()
    }

    fn is_empty(&self) -> bool {
        self.status_ranges.is_empty() && !self.retry_attempts && self.min_duration.is_none()
    }

    fn keep(&self, r: &Record) -> bool {
        self.is_empty()
            || self
                .status_ranges
                .iter()
                .any(|&(lo, hi)| (lo..=hi).contains(&r.status))
            || (self.retry_attempts && r.attempts > 1)
            || self
                .min_duration
                .is_some_and(|min| r.started.elapsed() > min)
    }
}

/// What JSON lines contain (`accessLog.fields`).
#[derive(Debug, Clone, Default)]
pub struct Fields {
    /// Drop every field not named in `keep`/`redact` (`defaultMode = "drop"`).
    pub drop_by_default: bool,
    pub keep: Vec<String>,
    pub drop: Vec<String>,
    pub redact: Vec<String>,
    /// Request headers: default mode and per-name modes (lower-case names).
    pub headers_default: HeaderMode,
    pub headers: Vec<(String, HeaderMode)>,
}

/// What happens to a request header in the access log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HeaderMode {
    Keep,
    #[default]
    Drop,
    Redact,
}

impl Fields {
    /// Does any header need capturing at all? (Usually not: nothing is copied then.)
    pub fn wants_headers(&self) -> bool {
        self.headers_default != HeaderMode::Drop
            || self.headers.iter().any(|(_, m)| *m != HeaderMode::Drop)
    }

    /// The request headers to record, redacted where asked.
    pub fn capture(&self, headers: &http::HeaderMap) -> Vec<(String, String)> {
        if !self.wants_headers() {
            return Vec::new();
        }
        headers
            .iter()
            .filter_map(|(name, value)| {
                let mode = self
                    .headers
                    .iter()
                    .find(|(n, _)| n == name.as_str())
                    .map_or(self.headers_default, |(_, m)| *m);
                let shown = match mode {
                    HeaderMode::Drop => return None,
                    HeaderMode::Redact => "REDACTED".to_string(),
                    HeaderMode::Keep => String::from_utf8_lossy(value.as_bytes()).into_owned(),
                };
                Some((name.as_str().to_string(), shown))
            })
            .collect()
    }

    fn shape(&self, obj: &mut serde_json::Map<String, serde_json::Value>) {
        obj.retain(|k, _| {
            if self.drop.iter().any(|d| d == k) {
                return false;
            }
            !self.drop_by_default
                || self.keep.iter().any(|x| x == k)
                || self.redact.iter().any(|x| x == k)
        });
        for k in &self.redact {
            if let Some(v) = obj.get_mut(k) {
                *v = serde_json::Value::String("REDACTED".into());
            }
        }
    }
}

/// Line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Common,
    Json,
}

struct Inner {
    tx: mpsc::Sender<String>,
    format: Format,
    filter: Filter,
    fields: Fields,
    count: AtomicU64,
    dropped: AtomicU64,
}

/// Cheap to clone handle on the access-log writer.
#[derive(Clone)]
pub struct AccessLog {
    inner: Arc<Inner>,
}

impl AccessLog {
    /// Start the writer task. `path` None writes to standard output.
    pub fn start(
        path: Option<PathBuf>,
        format: Format,
        queue: usize,
        filter: Filter,
        fields: Fields,
    ) -> (AccessLog, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel::<String>(queue.max(16));
        let task = tokio::spawn(crate::linelog::write_lines(rx, path, "access log", None));
        let log = AccessLog {
            inner: Arc::new(Inner {
                tx,
                format,
                filter,
                fields,
                count: AtomicU64::new(0),
                dropped: AtomicU64::new(0),
            }),
        };
        (log, task)
    }

    /// Queue a line; drops (and counts) it when the writer is behind.
    pub fn write(&self, record: Record) {
        let n = self.inner.count.fetch_add(1, Ordering::Relaxed) + 1;
        if !self.inner.filter.keep(&record) {
            return;
        }
        let line = match self.inner.format {
            Format::Common => common_line(&record, n),
            Format::Json => json_line(&record, &self.inner.fields),
        };
        if self.inner.tx.try_send(line).is_err() {
            self.inner.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Lines dropped because the writer could not keep up.
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    /// The request headers this log wants recorded (empty unless `fields.headers` asks).
    pub fn capture_headers(&self, headers: &http::HeaderMap) -> Vec<(String, String)> {
        self.inner.fields.capture(headers)
    }
}

fn dash(s: &str) -> &str {
    if s.is_empty() { "-" } else { s }
}

/// Traefik's common log format (CLF plus request count, router, server URL and duration).
fn common_line(r: &Record, count: u64) -> String {
    format!(
        "{} - - [{}] \"{} {} {}\" {} {} \"{}\" \"{}\" {} \"{}\" \"{}\" {}ms\n",
        r.client,
        Utc::from(r.started_wall).clf(),
        r.method,
        r.path,
        r.proto,
        r.status,
        r.size,
        dash(&r.referer),
        dash(&r.user_agent),
        count,
        dash(&r.router),
        dash(&r.server_url),
        r.started.elapsed().as_millis(),
    )
}

fn json_line(r: &Record, fields: &Fields) -> String {
    let mut v = serde_json::json!({
        "ClientHost": r.client.to_string(),
        "RequestMethod": r.method,
        "RequestPath": r.path,
        "RequestProtocol": r.proto,
        "DownstreamStatus": r.status,
        "DownstreamContentSize": r.size,
        "RequestReferer": r.referer,
        "RequestUserAgent": r.user_agent,
        "RouterName": r.router,
        "ServiceURL": r.server_url,
        "entryPointName": r.entrypoint,
        "Duration": r.started.elapsed().as_nanos() as u64,
        "StartUTC": Utc::from(r.started_wall).rfc3339_millis(),
        "RetryAttempts": r.attempts.saturating_sub(1),
    });
    if let Some(obj) = v.as_object_mut() {
        fields.shape(obj);
        for (name, value) in &r.headers {
            obj.insert(
                format!("request_{name}"),
                serde_json::Value::String(value.clone()),
            );
        }
    }
    let mut s = v.to_string();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn common_format() {
        let r = Record {
            client: "192.0.2.7".parse().unwrap(),
            method: "GET".into(),
            path: "/a?b=1".into(),
            proto: "HTTP/1.1",
            status: 200,
            size: 42,
            referer: String::new(),
            user_agent: "curl/8".into(),
            router: "web@file".into(),
            server_url: "http://10.0.0.2:80".into(),
            started: Instant::now(),
            started_wall: UNIX_EPOCH + Duration::from_secs(971_189_736),
            entrypoint: "web".into(),
            attempts: 1,
            headers: Vec::new(),
        };
        let line = common_line(&r, 7);
        assert!(line.starts_with(
            "192.0.2.7 - - [10/Oct/2000:14:55:36 +0000] \"GET /a?b=1 HTTP/1.1\" 200 42 \"-\" \"curl/8\" 7 \"web@file\" \"http://10.0.0.2:80\" "
        ), "{line}");
        let json: serde_json::Value =
            serde_json::from_str(&json_line(&r, &Fields::default())).unwrap();
        assert_eq!(json["DownstreamStatus"], 200);
        assert_eq!(json["RouterName"], "web@file");
    }

    #[test]
    fn filters_and_fields() {
        assert_eq!(
            Filter::parse_status(&["404".into(), "500-599".into()]).unwrap(),
            vec![(404, 404), (500, 599)]
        );
        assert!(Filter::parse_status(&["5xx".into()]).is_err());
        assert!(Filter::parse_status(&["599-500".into()]).is_err());
        let f = Filter {
            status_ranges: vec![(500, 599)],
            retry_attempts: true,
            min_duration: None,
        };
        let mut r = Record {
            client: "192.0.2.7".parse().unwrap(),
            method: "GET".into(),
            path: "/".into(),
            proto: "HTTP/1.1",
            status: 200,
            size: 0,
            referer: String::new(),
            user_agent: String::new(),
            router: String::new(),
            server_url: String::new(),
            started: Instant::now(),
            started_wall: UNIX_EPOCH,
            entrypoint: "web".into(),
            attempts: 1,
            headers: Vec::new(),
        };
        assert!(!f.keep(&r));
        r.status = 503;
        assert!(f.keep(&r));
        r.status = 200;
        r.attempts = 2;
        assert!(f.keep(&r));
        assert!(Filter::default().keep(&r));

        let fields = Fields {
            drop_by_default: true,
            keep: vec!["RequestPath".into()],
            redact: vec!["ClientHost".into()],
            headers_default: HeaderMode::Drop,
            headers: vec![
                ("authorization".into(), HeaderMode::Redact),
                ("user-agent".into(), HeaderMode::Keep),
            ],
            ..Fields::default()
        };
        let mut h = http::HeaderMap::new();
        h.insert("authorization", "secret".parse().unwrap());
        h.insert("user-agent", "curl".parse().unwrap());
        h.insert("cookie", "c=1".parse().unwrap());
        r.headers = fields.capture(&h);
        let json: serde_json::Value = serde_json::from_str(&json_line(&r, &fields)).unwrap();
        let obj = json.as_object().unwrap();
        assert_eq!(obj["RequestPath"], "/");
        assert_eq!(obj["ClientHost"], "REDACTED");
        assert!(!obj.contains_key("DownstreamStatus"));
        assert_eq!(obj["request_authorization"], "REDACTED");
        assert_eq!(obj["request_user-agent"], "curl");
        assert!(!obj.contains_key("request_cookie"));
    }
}
