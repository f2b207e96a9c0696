//! The static sections besides entry points: `[providers]`, `[api]`, `[log]`, `[accessLog]`
//! (Traefik's names and defaults) and boma's own `[limits]` (snake_case keys).
//!
//! Types and defaults only: a section's mere presence is what turns its component on, and the
//! components read these values; nothing here starts anything. Checks that need positions are in
//! `validate.rs`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::Duration;

/// `[providers]`: where routers, services and middlewares come from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Providers {
    /// Minimum time between two applied configurations: events closer than this are batched
    /// (default 2s).
    #[serde(rename = "providersThrottleDuration", default = "default_throttle")]
    pub providers_throttle_duration: Duration,
    /// The file provider: dynamic configuration from TOML files.
    pub file: Option<FileProvider>,
    /// The docker provider: routes from container labels.
    pub docker: Option<super::DockerProvider>,
    /// The swarm provider: routes from swarm services' labels (same keys as docker, plus
    /// `refreshSeconds`).
    pub swarm: Option<super::DockerProvider>,
}

fn default_throttle() -> Duration {
    Duration::from_secs(2)
}

impl Default for Providers {
    fn default() -> Self {
        Self {
            providers_throttle_duration: default_throttle(),
            file: None,
            docker: None,
            swarm: None,
        }
    }
}

/// `[providers.file]`: exactly one of `filename` and `directory`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileProvider {
    /// One dynamic configuration file.
    pub filename: Option<PathBuf>,
    /// A directory whose `*.toml` files (recursively) are read and merged.
    pub directory: Option<PathBuf>,
    /// Reload when the file or directory changes (default true).
    #[serde(default = "default_true")]
    pub watch: bool,
}

fn default_true() -> bool {
    true
}

/// `[api]`: the API and dashboard (served by the admin part).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Api {
    /// Serve the dashboard (default true once `[api]` is present).
    pub dashboard: bool,
    /// Serve the API and dashboard without authentication on the `traefik` entry point.
    pub insecure: bool,
    /// Also serve debugging endpoints.
    pub debug: bool,
}

impl Default for Api {
    fn default() -> Self {
        Self {
            dashboard: true,
            insecure: false,
            debug: false,
        }
    }
}

/// `[admin]`: the credentials the API and dashboard ask for when an operator's router (not
/// `[api] insecure`'s `traefik` entry point) publishes them. Until `users` is set they answer
/// only with how to set it. Entries are htpasswd lines, `name:hash`, with the hashes basicAuth
/// reads (bcrypt, `$apr1$`, `{SHA}`). Never serialized or logged.
#[derive(Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Admin {
    #[serde(skip_serializing)]
    pub users: Vec<String>,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin")
            .field("users", &format_args!("<{} users>", self.users.len()))
            .finish()
    }
}

/// Whether `entry` is an htpasswd line boma can check: `name:hash` with a bcrypt (`$2a$`, `$2b$`,
/// `$2x$`, `$2y$`), MD5-crypt (`$apr1$`, `$1$`) or `{SHA}` hash. The reason when it is not; the
/// hash itself is never quoted.
pub fn admin_user_problem(entry: &str) -> Option<String> {
    let Some((name, hash)) = entry.split_once(':') else {
        return Some("expected name:hash (an htpasswd line)".into());
    };
    if name.is_empty() || hash.contains(':') {
        return Some("expected name:hash (an htpasswd line)".into());
    }
    let known = ["$2a$", "$2b$", "$2x$", "$2y$", "$apr1$", "$1$", "{SHA}"];
    if !known.iter().any(|p| hash.starts_with(p)) {
        return Some(format!(
            "the hash of user {name:?} is not bcrypt, $apr1$ or {{SHA}} (make one with `htpasswd -nB {name}`)"
        ));
    }
    None
}

/// `[log]`: boma's own log. Without the section, Traefik's defaults apply (`Log::default()`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Log {
    /// Least severe level written (default `ERROR`, as in Traefik).
    pub level: LogLevel,
    /// `common` (text, default) or `json`.
    pub format: LogFormat,
    /// Write to this file instead of standard output.
    #[serde(rename = "filePath")]
    pub file_path: Option<PathBuf>,
    /// No colours in the `common` format.
    #[serde(rename = "noColor")]
    pub no_color: bool,
}

/// Log levels, written in any case (`info`, `INFO`).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Everything.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation.
    Info,
    /// Something looks wrong.
    Warn,
    /// Something failed (default).
    #[default]
    Error,
    /// Something failed and boma stops.
    Fatal,
    /// Same as fatal (Traefik's name kept for compatibility).
    Panic,
}

impl LogLevel {
    /// The level in lower case, as `tracing`'s filters spell it (`fatal` and `panic` → `error`).
    pub fn as_filter(self) -> &'static str {
        match self {
            Self::Trace => "trace",
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error | Self::Fatal | Self::Panic => "error",
        }
    }
}

/// Log line format, for both logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One text line per event (default).
    #[default]
    Common,
    /// One JSON object per line.
    Json,
}

/// `[accessLog]`: one line per request. Off unless the section is present.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccessLog {
    /// Write to this file instead of standard output.
    #[serde(rename = "filePath")]
    pub file_path: Option<PathBuf>,
    /// `common` (Common Log Format, default) or `json`.
    pub format: LogFormat,
    /// Lines kept in memory before writing (default 0: write each line at once).
    #[serde(rename = "bufferingSize")]
    pub buffering_size: u64,
    /// Which requests are logged.
    pub filters: AccessLogFilters,
    /// Which fields and headers are written.
    pub fields: AccessLogFields,
}

/// `[accessLog.filters]`: a request is logged when it matches any filter given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccessLogFilters {
    /// Status codes or ranges to keep: `["404", "500-599"]`.
    #[serde(rename = "statusCodes")]
    pub status_codes: Vec<String>,
    /// Keep requests that were retried.
    #[serde(rename = "retryAttempts")]
    pub retry_attempts: bool,
    /// Keep requests that took longer than this (0: no filter).
    #[serde(rename = "minDuration")]
    pub min_duration: Duration,
}

/// `[accessLog.fields]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccessLogFields {
    /// What to do with fields not listed in `names` (default `keep`).
    #[serde(rename = "defaultMode")]
    pub default_mode: FieldMode,
    /// Per-field mode, by Traefik field name (`ClientHost`, `RequestPath`, ...).
    pub names: BTreeMap<String, FieldMode>,
    /// Request and response headers.
    pub headers: FieldHeaders,
}

impl Default for AccessLogFields {
    fn default() -> Self {
        Self {
            default_mode: FieldMode::Keep,
            names: BTreeMap::new(),
            headers: FieldHeaders::default(),
        }
    }
}

/// `[accessLog.fields.headers]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct FieldHeaders {
    /// What to do with headers not listed in `names` (default `drop`).
    #[serde(rename = "defaultMode")]
    pub default_mode: FieldMode,
    /// Per-header mode, by header name.
    pub names: BTreeMap<String, FieldMode>,
}

impl Default for FieldHeaders {
    fn default() -> Self {
        Self {
            default_mode: FieldMode::Drop,
            names: BTreeMap::new(),
        }
    }
}

/// What the access log does with a field or header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldMode {
    /// Write it.
    Keep,
    /// Leave it out.
    Drop,
    /// Write it as `REDACTED` (headers only).
    Redact,
}

/// `[limits]`: boma's own bounds on memory and waiting. Every table, queue and wait is bounded;
/// these are the bounds. Keys are snake_case.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Open client connections per entry point; more wait to be accepted (default 4096).
    pub max_connections: usize,
    /// Open client connections from one IP address per entry point; more are closed at once
    /// and counted (`/api/entrypoints`), so one client cannot hold every connection (default
    /// 512).
    pub max_connections_per_ip: usize,
    /// Size of a request's head (request line and headers), 8 KiB to 1 MiB (default 16384).
    pub max_header_bytes: usize,
    /// Idle keep-alive connections kept per upstream server (default 64: clients beyond it
    /// would reconnect for every request; Traefik keeps 200).
    pub upstream_idle_per_host: usize,
    /// How long an idle upstream connection is kept (default 90s).
    pub upstream_idle_timeout: Duration,
    /// How long to wait for an upstream TCP connection (default 5s).
    pub upstream_connect_timeout: Duration,
    /// How long to wait for an upstream's response headers once the request is sent, its body
    /// included (default 60s).
    pub upstream_response_timeout: Duration,
    /// Routes in one assembled configuration; routes beyond this are not served and are
    /// reported as a problem (default 10000).
    pub max_routes: usize,
    /// Threads serving connections, each with its own event loop, listening socket
    /// (SO_REUSEPORT) and upstream pool, like nginx's workers; 0 means one per CPU core
    /// (default 0).
    pub workers: usize,
    /// How long an upstream server is skipped after a failed connection or a timeout (the
    /// passive mark; a success clears it early) (default 10s).
    pub passive_cooldown: Duration,
    /// Client sources one rateLimit or inFlightReq middleware keeps state for; beyond it the
    /// least recently seen source is forgotten (rateLimit) or new sources are refused
    /// (inFlightReq) (default 10000).
    pub rate_limit_sources: usize,
    /// An upgraded (WebSocket) connection with no byte in either direction for this long is
    /// closed; one that carries traffic lives as long as it does (default 1h).
    pub upgraded_idle_timeout: Duration,
    /// Prometheus series (one per label set: entry point, router or service, code, method,
    /// protocol) each worker keeps; new label sets beyond it are counted, not recorded
    /// (default 4096).
    pub max_metric_series: usize,
    /// Bytes of request and response bodies all `buffering` middlewares together keep in
    /// memory; the rest of a body goes to an unnamed temporary file (default 33554432).
    pub max_buffered_memory: usize,
    /// Longest body a `buffering` middleware reads when its own `maxRequestBodyBytes` or
    /// `maxResponseBodyBytes` is 0, Traefik's "no maximum" (default 268435456).
    pub max_buffered_body: u64,
}

impl Limits {
    /// Smallest accepted `max_header_bytes` (hyper's minimum read buffer).
    pub const MIN_HEADER_BYTES: usize = 8 * 1024;
    /// Largest accepted `max_header_bytes`.
    pub const MAX_HEADER_BYTES: usize = 1024 * 1024;
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            max_connections_per_ip: 512,
            max_header_bytes: 16 * 1024,
            upstream_idle_per_host: 64,
            upstream_idle_timeout: Duration::from_secs(90),
            upstream_connect_timeout: Duration::from_secs(5),
            upstream_response_timeout: Duration::from_secs(60),
            max_routes: 10_000,
            workers: 0,
            passive_cooldown: Duration::from_secs(10),
            rate_limit_sources: 10_000,
            upgraded_idle_timeout: Duration::from_secs(3600),
            max_metric_series: 4096,
            max_buffered_memory: 32 << 20,
            max_buffered_body: 256 << 20,
        }
    }
}

/// `[metrics]`: Prometheus only (Traefik's other backends are refused as unsupported).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Metrics {
    pub prometheus: Option<Prometheus>,
}

/// `[metrics.prometheus]`, with Traefik's keys and defaults.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Prometheus {
    /// Upper bounds of the duration histograms, in seconds.
    pub buckets: Vec<f64>,
    #[serde(rename = "addEntryPointsLabels")]
    pub add_entry_points_labels: bool,
    #[serde(rename = "addRoutersLabels")]
    pub add_routers_labels: bool,
    #[serde(rename = "addServicesLabels")]
    pub add_services_labels: bool,
    /// Where `/metrics` is served (`prometheus@internal`), unless `manualRouting`.
    #[serde(rename = "entryPoint")]
    pub entry_point: String,
    /// No router is made: route to `prometheus@internal` yourself.
    #[serde(rename = "manualRouting")]
    pub manual_routing: bool,
}

impl Default for Prometheus {
    fn default() -> Self {
        Prometheus {
            buckets: vec![0.1, 0.3, 1.2, 5.0],
            add_entry_points_labels: true,
            add_routers_labels: false,
            add_services_labels: true,
            entry_point: "traefik".into(),
            manual_routing: false,
        }
    }
}

/// Where the host keeps its CA bundle (Debian's ca-certificates), used without `rootCAs`.
const HOST_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// TLS towards `https://` servers, from the static `[serversTransport]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServersTransport {
    /// Accept any server certificate (self-signed containers). Signatures are still checked.
    #[serde(rename = "insecureSkipVerify", default)]
    pub insecure_skip_verify: bool,
    /// PEM files of the CAs that sign the servers' certificates (instead of the host's bundle).
    #[serde(rename = "rootCAs", default)]
    pub root_cas: Vec<PathBuf>,
}

impl ServersTransport {
    /// The rustls client configuration, or why it cannot be made (a CA file that does not
    /// read).
    pub fn tls(&self) -> Result<Arc<rustls::ClientConfig>, String> {
        let roots = if self.insecure_skip_verify {
            None
        } else if self.root_cas.is_empty() {
            // No bundle (the image has none): every certificate fails to verify, with a clear
            // error per request, until rootCAs or insecureSkipVerify is set.
            std::path::Path::new(HOST_BUNDLE)
                .exists()
                .then(|| vec![PathBuf::from(HOST_BUNDLE)])
                .or(Some(Vec::new()))
        } else {
            Some(self.root_cas.clone())
        };
        crate::tlsclient::config(roots.as_deref(), None).map(Arc::new)
    }
}
