//! Prometheus metrics. The proxy's per-request series use Traefik's names and labels
//! (`traefik_entrypoint_*`, `traefik_router_*`, `traefik_service_*`), so Grafana dashboards
//! made for Traefik keep working. Each worker records into its own shard (a mutex only that
//! worker and a scrape ever take), keyed by borrowed names so that a request allocates nothing
//! once its series exists; a scrape sums the shards. The number of series is bounded: past the
//! bound new label sets are dropped and counted.
//!
//! [`Text`] writes the exposition format; the admin side uses it for everything that is read
//! from its owner at scrape time (connections, servers' health, DNS, DHCP, certificates).
//! A leaf module: it knows nothing of boma's other parts.

use std::collections::BTreeMap;
use std::collections::hash_map::RandomState;
use std::fmt::Write;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// What is recorded, from `[metrics.prometheus]` and `[limits]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Upper bounds of the duration histograms, in seconds, ascending.
    pub buckets: Vec<f64>,
    pub entrypoints: bool,
    pub routers: bool,
    pub services: bool,
    /// Series kept per worker (each label set of each scope is one).
    pub max_series: usize,
}

/// Methods as labels: the standard ones, everything else one value (Traefik passes any method
/// through, which no bound can survive).
const METHODS: [&str; 10] = [
    "GET",
    "HEAD",
    "POST",
    "PUT",
    "DELETE",
    "CONNECT",
    "OPTIONS",
    "TRACE",
    "PATCH",
    "EXTENSION_METHOD",
];

/// The `protocol` label, as Traefik derives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http,
    Websocket,
    Sse,
    Grpc,
    GrpcWeb,
}

impl Protocol {
    fn label(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Websocket => "websocket",
            Protocol::Sse => "sse",
            Protocol::Grpc => "grpc",
            Protocol::GrpcWeb => "grpc-web",
        }
    }

    /// From the request's `Upgrade`, `Accept` and `Content-Type`.
    pub fn of(upgrade: Option<&[u8]>, accept: Option<&[u8]>, content_type: Option<&[u8]>) -> Self {
        // Case-insensitive search without a copy: this runs for every request.
        let has = |v: Option<&[u8]>, what: &str| {
            v.is_some_and(|v| {
                (v.windows(what.len())).any(|w| w.eq_ignore_ascii_case(what.as_bytes()))
            })
        };
        if has(upgrade, "websocket") {
            Protocol::Websocket
        } else if has(accept, "text/event-stream") {
            Protocol::Sse
        } else if has(content_type, "application/grpc-web") {
            Protocol::GrpcWeb
        } else if has(content_type, "application/grpc") {
            Protocol::Grpc
        } else {
            Protocol::Http
        }
    }
}

/// The method's index in [`METHODS`].
pub fn method_index(method: &str) -> u8 {
    METHODS[..METHODS.len() - 1]
        .iter()
        .position(|m| *m == method)
        .unwrap_or(METHODS.len() - 1) as u8
}

/// One finished request.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub entrypoint: &'a str,
    /// The router and its service; `None` when no router took the request.
    pub route: Option<(&'a str, &'a str)>,
    pub code: u16,
    pub method: u8,
    pub protocol: Protocol,
    pub seconds: f64,
    /// Response body bytes sent.
    pub bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Scope {
    EntryPoint,
    Router,
    Service,
}

/// A series' labels, owned (stored once per series).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    scope: Scope,
    name: Box<str>,
    /// The router's service (router scope only).
    service: Box<str>,
    code: u16,
    method: u8,
    protocol: u8,
}

/// The same labels borrowed from a request, to find a series without allocating.
struct KeyRef<'a> {
    scope: Scope,
    name: &'a str,
    service: &'a str,
    code: u16,
    method: u8,
    protocol: u8,
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, h: &mut H) {
        hash_parts(
            h,
            self.scope,
            &self.name,
            &self.service,
            self.code,
            self.method,
            self.protocol,
        );
    }
}

impl Hash for KeyRef<'_> {
    fn hash<H: Hasher>(&self, h: &mut H) {
        hash_parts(
            h,
            self.scope,
            self.name,
            self.service,
            self.code,
            self.method,
            self.protocol,
        );
    }
}

fn hash_parts<H: Hasher>(h: &mut H, s: Scope, n: &str, svc: &str, c: u16, m: u8, p: u8) {
    s.hash(h);
    n.hash(h);
    svc.hash(h);
    c.hash(h);
    m.hash(h);
    p.hash(h);
}

impl hashbrown::Equivalent<Key> for KeyRef<'_> {
    fn equivalent(&self, k: &Key) -> bool {
        self.scope == k.scope
            && self.code == k.code
            && self.method == k.method
            && self.protocol == k.protocol
            && *self.name == *k.name
            && *self.service == *k.service
    }
}

/// Counts of one label set: requests, their duration histogram, bytes sent.
#[derive(Debug, Clone, Default)]
struct Series {
    count: u64,
    sum: f64,
    /// Per bucket (not cumulative), then one for above the last bound.
    buckets: Vec<u64>,
    bytes: u64,
}

impl Series {
    fn add(&mut self, other: &Series) {
        self.count += other.count;
        self.sum += other.sum;
        self.bytes += other.bytes;
        if self.buckets.len() < other.buckets.len() {
            self.buckets.resize(other.buckets.len(), 0);
        }
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += b;
        }
    }
}

type Shard = hashbrown::HashMap<Key, Series, RandomState>;

/// Every metric boma records itself.
#[derive(Debug)]
pub struct Registry {
    settings: Settings,
    shards: Vec<Mutex<Shard>>,
    /// Label sets not recorded because a shard was full.
    pub dropped: AtomicU64,
    /// Configurations applied since start, and when the last one was (Unix seconds).
    pub reloads: AtomicU64,
    pub last_reload: AtomicU64,
    /// Fragments received from each provider (container events, file changes, leases).
    pub provider_updates: Mutex<BTreeMap<String, u64>>,
}

impl Registry {
    /// A registry with one shard per worker.
    pub fn new(settings: Settings, workers: usize) -> Registry {
        Registry {
            settings,
            shards: (0..workers.max(1))
                .map(|_| Mutex::new(Shard::with_hasher(RandomState::new())))
                .collect(),
            dropped: AtomicU64::new(0),
            reloads: AtomicU64::new(0),
            last_reload: AtomicU64::new(0),
            provider_updates: Mutex::new(BTreeMap::new()),
        }
    }

    /// Record a finished request in worker `shard`'s series.
    pub fn observe(&self, shard: usize, r: &Request<'_>) {
        let Some(shard) = self.shards.get(shard % self.shards.len()) else {
            return;
        };
        let mut shard = shard.lock().unwrap_or_else(|e| e.into_inner());
        let mut one = |scope: Scope, name: &str, service: &str| {
            let key = KeyRef {
                scope,
                name,
                service,
                code: r.code,
                method: r.method,
                protocol: r.protocol as u8,
            };
            let buckets = &self.settings.buckets;
            let add = |series: &mut Series| {
                series.count += 1;
                series.sum += r.seconds;
                series.bytes += r.bytes;
                let i = (buckets.iter())
                    .position(|b| r.seconds <= *b)
                    .unwrap_or(buckets.len());
                if let Some(b) = series.buckets.get_mut(i) {
                    *b += 1;
                }
            };
            if let Some(series) = shard.get_mut(&key) {
                add(series);
                return;
            }
            if shard.len() >= self.settings.max_series {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            let owned = Key {
                scope,
                name: name.into(),
                service: service.into(),
                code: r.code,
                method: r.method,
                protocol: r.protocol as u8,
            };
            let series = shard.entry(owned).or_insert_with(|| Series {
                buckets: vec![0; buckets.len() + 1],
                ..Series::default()
            });
            add(series);
        };
        if self.settings.entrypoints {
            one(Scope::EntryPoint, r.entrypoint, "");
        }
        if let Some((router, service)) = r.route {
            if self.settings.routers {
                one(Scope::Router, router, service);
            }
            if self.settings.services {
                one(Scope::Service, service, "");
            }
        }
    }

    /// Counts one fragment from provider `ns`.
    pub fn provider_update(&self, ns: &str) {
        let mut m = self
            .provider_updates
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        *m.entry(ns.to_string()).or_insert(0) += 1;
    }

    /// Every shard summed, in label order.
    fn merged(&self) -> BTreeMap<Key, Series> {
        let mut out: BTreeMap<Key, Series> = BTreeMap::new();
        for shard in &self.shards {
            let shard = shard.lock().unwrap_or_else(|e| e.into_inner());
            for (k, s) in shard.iter() {
                out.entry(k.clone()).or_default().add(s);
            }
        }
        out
    }

    /// The request series in the exposition format.
    pub fn render(&self, t: &mut Text) {
        let all = self.merged();
        for (scope, prefix) in [
            (Scope::EntryPoint, "traefik_entrypoint"),
            (Scope::Router, "traefik_router"),
            (Scope::Service, "traefik_service"),
        ] {
            let series: Vec<(&Key, &Series)> =
                all.iter().filter(|(k, _)| k.scope == scope).collect();
            if !series.is_empty() {
                self.render_scope(t, scope, prefix, &series);
            }
        }
        self.render_totals(t);
    }

    /// One scope's three families (requests, durations, bytes), one sample set per key.
    fn render_scope(&self, t: &mut Text, scope: Scope, prefix: &str, series: &[(&Key, &Series)]) {
        let what = match scope {
            Scope::EntryPoint => "entry point",
            Scope::Router => "router",
            Scope::Service => "service",
        };
        let name = format!("{prefix}_requests_total");
        t.family(
            &name,
            "counter",
            &format!("How many HTTP requests each {what} answered."),
        );
        for (k, s) in series {
            t.sample(&name, &labels(k), s.count as f64);
        }
        let name = format!("{prefix}_request_duration_seconds");
        t.family(
            &name,
            "histogram",
            &format!("How long each {what} took to answer, body sent."),
        );
        for (k, s) in series {
            let l = labels(k);
            let mut cumulative = 0;
            for (i, bound) in self.settings.buckets.iter().enumerate() {
                cumulative += s.buckets.get(i).copied().unwrap_or(0);
                let mut lb = l.clone();
                lb.push(("le", format_f64(*bound)));
                t.sample(&format!("{name}_bucket"), &lb, cumulative as f64);
            }
            let mut lb = l.clone();
            lb.push(("le", "+Inf".into()));
            t.sample(&format!("{name}_bucket"), &lb, s.count as f64);
            t.sample(&format!("{name}_sum"), &l, s.sum);
            t.sample(&format!("{name}_count"), &l, s.count as f64);
        }
        let name = format!("{prefix}_responses_bytes_total");
        t.family(
            &name,
            "counter",
            &format!("Response body bytes each {what} sent."),
        );
        for (k, s) in series {
            t.sample(&name, &labels(k), s.bytes as f64);
        }
    }

    /// The series that are not per request: dropped observations, reloads, provider updates.
    fn render_totals(&self, t: &mut Text) {
        t.family(
            "boma_metrics_series_dropped_total",
            "counter",
            "Request observations not recorded because [limits] max_metric_series was reached.",
        );
        t.sample(
            "boma_metrics_series_dropped_total",
            &[],
            self.dropped.load(Ordering::Relaxed) as f64,
        );
        t.family(
            "traefik_config_reloads_total",
            "counter",
            "Configurations applied since start.",
        );
        t.sample(
            "traefik_config_reloads_total",
            &[],
            self.reloads.load(Ordering::Relaxed) as f64,
        );
        t.family(
            "traefik_config_last_reload_success",
            "gauge",
            "When the last configuration was applied (Unix seconds).",
        );
        let last = self.last_reload.load(Ordering::Relaxed) as f64;
        t.sample("traefik_config_last_reload_success", &[], last);
        let updates = self
            .provider_updates
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        t.family(
            "boma_provider_updates_total",
            "counter",
            "Configurations received from each provider (file changes, container events, leases).",
        );
        for (ns, n) in updates.iter() {
            t.sample(
                "boma_provider_updates_total",
                &[("provider", ns.clone())],
                *n as f64,
            );
        }
    }
}

/// A request series' labels, as Traefik names them for the key's scope.
fn labels(k: &Key) -> Vec<(&'static str, String)> {
    let mut l = vec![
        ("code", k.code.to_string()),
        (
            "method",
            METHODS[k.method as usize % METHODS.len()].to_string(),
        ),
        ("protocol", protocol_label(k.protocol).to_string()),
    ];
    match k.scope {
        Scope::EntryPoint => l.push(("entrypoint", k.name.to_string())),
        Scope::Router => {
            l.push(("router", k.name.to_string()));
            l.push(("service", k.service.to_string()));
        }
        Scope::Service => l.push(("service", k.name.to_string())),
    }
    l
}

fn protocol_label(p: u8) -> &'static str {
    [
        Protocol::Http,
        Protocol::Websocket,
        Protocol::Sse,
        Protocol::Grpc,
        Protocol::GrpcWeb,
    ]
    .get(p as usize)
    .map_or("http", |p| p.label())
}

/// A number as Prometheus writes it.
fn format_f64(v: f64) -> String {
    if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else if v.is_nan() {
        "NaN".into()
    } else {
        format!("{v}")
    }
}

/// The text exposition format (version 0.0.4), written family by family.
#[derive(Debug, Default)]
pub struct Text {
    out: String,
}

impl Text {
    /// Starts family `name` of `kind` (`counter`, `gauge`, `histogram`).
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    /// One sample of the current family.
    pub fn sample(&mut self, name: &str, labels: &[(&str, String)], value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let v = v
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n");
                let _ = write!(self.out, "{k}=\"{v}\"");
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {}", format_f64(value));
    }

    /// A one-sample family.
    pub fn single(&mut self, name: &str, kind: &str, help: &str, value: f64) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }

    pub fn finish(self) -> String {
        self.out
    }
}

#[cfg(test)]
mod tests;
