//! The serde schema of Traefik's dynamic configuration as the file provider reads it: `[http]`
//! routers, services and middlewares under Traefik's names (keys in any case, map keys as
//! written), with Traefik's defaults, and `[tls]` (its types are `runtime::tls::config`'s). `[tcp]`, `[udp]` and
//! `serversTransports` are kept as opaque TOML so the assembler can say "not supported yet"
//! rather than fail to parse.
//!
//! Shape and per-value checks only: references between routers, services and middlewares, rule
//! syntax and entry point names are the assembler's job. Middleware options are defined by
//! `crate::runtime::middlewares::MiddlewareConfig`, not here.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::config::nocase::{self, Unsupported};
use crate::config::{ConfigErrors, Domain, Duration};
use crate::runtime::middlewares::MiddlewareConfig;
use crate::runtime::tls::config::Tls;

/// One dynamic configuration file (or fragment).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DynamicConfig {
    /// Routers, services and middlewares for HTTP.
    pub http: Option<Http>,
    /// TCP routing: not supported yet, kept opaque.
    pub tcp: Option<toml::Value>,
    /// UDP routing: not supported yet, kept opaque.
    pub udp: Option<toml::Value>,
    /// Certificates, TLS options and stores.
    pub tls: Option<Tls>,
}

/// `[http]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Http {
    /// Routers by name.
    pub routers: BTreeMap<String, Router>,
    /// Services by name.
    pub services: BTreeMap<String, Service>,
    /// Middlewares by name.
    pub middlewares: BTreeMap<String, MiddlewareConfig>,
    /// Upstream transports by name: not supported yet, kept opaque.
    #[serde(rename = "serversTransports")]
    pub servers_transports: BTreeMap<String, toml::Value>,
}

/// `[http.routers.<name>]`: which requests go to which service, through which middlewares.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Router {
    /// The matcher, e.g. ``Host(`example.org`) && PathPrefix(`/api`)``.
    pub rule: String,
    /// `v3` (default) or the deprecated `v2`.
    #[serde(rename = "ruleSyntax")]
    pub rule_syntax: Option<String>,
    /// Entry points this router listens on; empty means the default ones.
    #[serde(rename = "entryPoints", default)]
    pub entry_points: Vec<String>,
    /// Middlewares applied in order (`name` or `name@provider`).
    #[serde(default)]
    pub middlewares: Vec<String>,
    /// The service (`name` or `name@provider`).
    pub service: String,
    /// Higher wins; absent (or 0) means the length of the rule.
    pub priority: Option<i64>,
    /// Served over TLS (on every entry point of the router) with these settings.
    pub tls: Option<Box<RouterTls>>,
    /// Per-router access log, metrics and tracing switches: kept opaque.
    pub observability: Option<Box<toml::Value>>,
}

/// `[http.routers.<name>.tls]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RouterTls {
    /// Certificate resolver.
    #[serde(rename = "certResolver")]
    pub cert_resolver: Option<String>,
    /// Domains to get certificates for.
    pub domains: Vec<Domain>,
    /// Name of a TLS options set.
    pub options: Option<String>,
}

/// `[http.services.<name>]`: exactly one kind of service.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "ServiceRepr")]
pub enum Service {
    /// Balances between servers (boxed: by far the largest kind).
    LoadBalancer(Box<LoadBalancer>),
    /// Balances between services by weight.
    Weighted(Weighted),
    /// Sends to a service and copies requests to others.
    Mirroring(Mirroring),
    /// Sends to a service, or to a fallback while it is down.
    Failover(Failover),
}

impl Service {
    /// The kind's key in the file (`loadBalancer`, `weighted`, `mirroring`, `failover`).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::LoadBalancer(_) => "loadBalancer",
            Self::Weighted(_) => "weighted",
            Self::Mirroring(_) => "mirroring",
            Self::Failover(_) => "failover",
        }
    }
}

/// The file's shape of a service, before checking that exactly one kind is set.
#[derive(Deserialize)]
#[serde(rename = "Service", deny_unknown_fields)]
struct ServiceRepr {
    #[serde(rename = "loadBalancer")]
    load_balancer: Option<LoadBalancer>,
    weighted: Option<Weighted>,
    mirroring: Option<Mirroring>,
    failover: Option<Failover>,
}

/// A service with no kind, or with several.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceKindError {
    /// None of the four kinds is set.
    #[error("a service needs one of `loadBalancer`, `weighted`, `mirroring` or `failover`")]
    None,
    /// More than one kind is set.
    #[error("a service has exactly one kind, but this one sets {}", quote_all(.0))]
    Several(Vec<&'static str>),
}

fn quote_all(kinds: &[&str]) -> String {
    let quoted: Vec<String> = kinds.iter().map(|k| format!("`{k}`")).collect();
    quoted.join(" and ")
}

impl TryFrom<ServiceRepr> for Service {
    type Error = ServiceKindError;

    fn try_from(repr: ServiceRepr) -> Result<Self, Self::Error> {
        let mut kinds = Vec::new();
        kinds.extend(
            repr.load_balancer
                .map(|lb| Service::LoadBalancer(Box::new(lb))),
        );
        kinds.extend(repr.weighted.map(Service::Weighted));
        kinds.extend(repr.mirroring.map(Service::Mirroring));
        kinds.extend(repr.failover.map(Service::Failover));
        match kinds.len() {
            0 => Err(ServiceKindError::None),
            1 => kinds.pop().ok_or(ServiceKindError::None),
            _ => Err(ServiceKindError::Several(
                kinds.iter().map(Service::kind).collect(),
            )),
        }
    }
}

/// `[http.services.<name>.loadBalancer]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadBalancer {
    /// The upstream servers.
    #[serde(default)]
    pub servers: Vec<Server>,
    /// Forward the client's `Host` header (default true); otherwise the server's host is sent.
    #[serde(rename = "passHostHeader", default = "default_true")]
    pub pass_host_header: bool,
    /// Active health checks of the servers.
    #[serde(rename = "healthCheck")]
    pub health_check: Option<Box<HealthCheck>>,
    /// Passive health checks (servers failing real requests are set aside).
    #[serde(rename = "passiveHealthCheck")]
    pub passive_health_check: Option<PassiveHealthCheck>,
    /// Session affinity by cookie.
    pub sticky: Option<Box<Sticky>>,
    /// How responses are streamed back.
    #[serde(rename = "responseForwarding")]
    pub response_forwarding: Option<ResponseForwarding>,
    /// Name of a servers transport (not supported yet).
    #[serde(rename = "serversTransport")]
    pub servers_transport: Option<String>,
    /// Balancing strategy: `wrr` (Traefik's default), `p2c`, ...
    pub strategy: Option<String>,
}

impl LoadBalancer {
    /// The flush interval in force: `responseForwarding.flushInterval`, or Traefik's 100ms when
    /// the table is absent.
    pub fn flush_interval(&self) -> Duration {
        self.response_forwarding.as_ref().map_or_else(
            || ResponseForwarding::default().flush_interval,
            |r| r.flush_interval,
        )
    }
}

/// One upstream server.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    /// Base URL, e.g. `http://10.0.0.5:8080/`.
    pub url: String,
    /// Relative weight (absent means 1).
    pub weight: Option<u32>,
    /// Keep the path of `url` in front of the request path.
    #[serde(rename = "preservePath", default)]
    pub preserve_path: bool,
}

impl Server {
    /// The weight in force: `weight`, or 1 when absent.
    pub fn effective_weight(&self) -> u32 {
        self.weight.unwrap_or(1)
    }
}

/// `[...loadBalancer.healthCheck]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    /// Replaces the server URL's scheme for checks.
    pub scheme: Option<String>,
    /// `http` (default) or `grpc`.
    #[serde(default)]
    pub mode: HealthCheckMode,
    /// Path to request.
    pub path: Option<String>,
    /// Method to use (default GET).
    pub method: Option<String>,
    /// Expected status; absent means any 2xx or 3xx.
    pub status: Option<u16>,
    /// Replaces the server URL's port for checks.
    pub port: Option<u16>,
    /// Time between checks of a healthy server (default 30s).
    #[serde(default = "default_hc_interval")]
    pub interval: Duration,
    /// Time between checks of an unhealthy server (default: `interval`).
    #[serde(rename = "unhealthyInterval")]
    pub unhealthy_interval: Option<Duration>,
    /// Time a check may take (default 5s).
    #[serde(default = "default_hc_timeout")]
    pub timeout: Duration,
    /// `Host` header of checks.
    pub hostname: Option<String>,
    /// Follow redirects (default true).
    #[serde(rename = "followRedirects", default = "default_true")]
    pub follow_redirects: bool,
    /// Extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// How a health check probes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthCheckMode {
    /// An HTTP request (default).
    #[default]
    Http,
    /// The gRPC health checking protocol.
    Grpc,
}

/// `[...loadBalancer.passiveHealthCheck]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PassiveHealthCheck {
    /// Window in which failures are counted, and how long a failing server is set aside
    /// (default 10s).
    #[serde(rename = "failureWindow")]
    pub failure_window: Duration,
    /// Failures within the window that set a server aside (default 1).
    #[serde(rename = "maxFailedAttempts")]
    pub max_failed_attempts: u32,
}

impl Default for PassiveHealthCheck {
    fn default() -> Self {
        Self {
            failure_window: Duration::from_secs(10),
            max_failed_attempts: 1,
        }
    }
}

/// `[...sticky]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Sticky {
    /// Affinity cookie.
    pub cookie: Option<Cookie>,
}

/// `[...sticky.cookie]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Cookie {
    /// Cookie name (absent: derived from the service name).
    pub name: Option<String>,
    /// Only sent over HTTPS.
    pub secure: bool,
    /// Hidden from scripts.
    #[serde(rename = "httpOnly")]
    pub http_only: bool,
    /// `none`, `lax` or `strict`.
    #[serde(rename = "sameSite")]
    pub same_site: Option<String>,
    /// Seconds until expiry: 0 never expires, negative expires at once.
    #[serde(rename = "maxAge")]
    pub max_age: i64,
    /// Cookie path (default `/`).
    pub path: String,
    /// Cookie domain.
    pub domain: Option<String>,
}

impl Default for Cookie {
    fn default() -> Self {
        Self {
            name: None,
            secure: false,
            http_only: false,
            same_site: None,
            max_age: 0,
            path: "/".to_owned(),
            domain: None,
        }
    }
}

/// `[...loadBalancer.responseForwarding]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResponseForwarding {
    /// Time between flushes of a response body to the client; negative flushes after every
    /// write (default 100ms).
    #[serde(rename = "flushInterval")]
    pub flush_interval: Duration,
}

impl Default for ResponseForwarding {
    fn default() -> Self {
        Self {
            flush_interval: Duration::from_millis(100),
        }
    }
}

/// `[http.services.<name>.weighted]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Weighted {
    /// The services and their weights.
    #[serde(default)]
    pub services: Vec<WeightedService>,
    /// Session affinity by cookie.
    pub sticky: Option<Box<Sticky>>,
    /// Follow the health of the child services.
    #[serde(rename = "healthCheck")]
    pub health_check: Option<ServiceHealthCheck>,
}

/// One service of a weighted service.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightedService {
    /// Service name (`name` or `name@provider`).
    pub name: String,
    /// Relative weight (default 1).
    #[serde(default = "default_weight")]
    pub weight: u32,
}

/// `[http.services.<name>.mirroring]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mirroring {
    /// The service that answers.
    pub service: String,
    /// Copy request bodies to the mirrors (default true).
    #[serde(rename = "mirrorBody", default = "default_true")]
    pub mirror_body: bool,
    /// Largest body copied to mirrors; negative means no limit (default -1).
    #[serde(rename = "maxBodySize", default = "default_max_body")]
    pub max_body_size: i64,
    /// Services that get copies.
    #[serde(default)]
    pub mirrors: Vec<Mirror>,
    /// Follow the health of the main service.
    #[serde(rename = "healthCheck")]
    pub health_check: Option<ServiceHealthCheck>,
}

/// One mirror of a mirroring service.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mirror {
    /// Service name.
    pub name: String,
    /// Share of requests copied, 0 to 100.
    #[serde(default)]
    pub percent: u32,
}

/// `[http.services.<name>.failover]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Failover {
    /// The service used while it is up.
    pub service: String,
    /// The service used while the main one is down.
    pub fallback: String,
    /// Follow the health of the child services.
    #[serde(rename = "healthCheck")]
    pub health_check: Option<ServiceHealthCheck>,
}

/// `healthCheck = {}` on weighted, mirroring and failover services: takes no options.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceHealthCheck {}

fn default_true() -> bool {
    true
}

fn default_hc_interval() -> Duration {
    Duration::from_secs(30)
}

fn default_hc_timeout() -> Duration {
    Duration::from_secs(5)
}

fn default_weight() -> u32 {
    1
}

fn default_max_body() -> i64 {
    -1
}

/// Traefik dynamic options boma knows and does not implement.
const UNSUPPORTED: Unsupported = &[("Http", &["models"])];

/// Parses one dynamic configuration file read from `origin` (used only in messages).
pub fn parse_dynamic(src: &str, origin: &Path) -> Result<DynamicConfig, ConfigErrors> {
    nocase::from_toml_spanned::<DynamicConfig>(src, origin, UNSUPPORTED).map(|(config, spans)| {
        drop(spans);
        // The configuration is kept for as long as it is in force, but it was built while the
        // parser's spanned tree (~25 times the text) was alive, its pieces scattered among the
        // tree's: a fresh copy made now lies together, and the scattered one is freed whole,
        // so the allocator can give the tree's memory back (musl's keeps a slab while one
        // of its slots is used).
        // Its maps are built in bulk: full B-tree nodes, where inserting one by one leaves
        // them about half full.
        let compact = config.packed();
        drop(config);
        compact
    })
}

impl DynamicConfig {
    /// A copy whose `http` maps are built in bulk from their sorted entries.
    fn packed(&self) -> DynamicConfig {
        fn pack<T: Clone>(m: &BTreeMap<String, T>) -> BTreeMap<String, T> {
            m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
        }
        DynamicConfig {
            http: self.http.as_ref().map(|h| Http {
                routers: pack(&h.routers),
                services: pack(&h.services),
                middlewares: pack(&h.middlewares),
                servers_transports: pack(&h.servers_transports),
            }),
            tcp: self.tcp.clone(),
            udp: self.udp.clone(),
            tls: self.tls.clone(),
        }
    }

    /// Sections present in the file that boma does not serve yet (`tcp`, `udp`).
    pub fn unsupported_sections(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.tcp.is_some() {
            out.push("tcp");
        }
        if self.udp.is_some() {
            out.push("udp");
        }
        out
    }

    /// Merge `other` into `self` (several files of one provider). A name defined twice with
    /// different content keeps the first definition; `conflict(kind, name)` is told.
    pub fn merge_from(&mut self, other: &DynamicConfig, conflict: &mut dyn FnMut(&str, &str)) {
        fn merge_map<T: Clone + PartialEq>(
            into: &mut BTreeMap<String, T>,
            from: &BTreeMap<String, T>,
            kind: &str,
            conflict: &mut dyn FnMut(&str, &str),
        ) {
            for (name, value) in from {
                match into.get(name) {
                    Some(existing) if existing != value => conflict(kind, name),
                    Some(_) => {}
                    None => {
                        into.insert(name.clone(), value.clone());
                    }
                }
            }
        }
        if let Some(from) = &other.http {
            let into = self.http.get_or_insert_with(Http::default);
            merge_map(&mut into.routers, &from.routers, "router", conflict);
            merge_map(&mut into.services, &from.services, "service", conflict);
            merge_map(
                &mut into.middlewares,
                &from.middlewares,
                "middleware",
                conflict,
            );
            merge_map(
                &mut into.servers_transports,
                &from.servers_transports,
                "serversTransport",
                conflict,
            );
        }
        for (mine, theirs) in [(&mut self.tcp, &other.tcp), (&mut self.udp, &other.udp)] {
            if mine.is_none() {
                mine.clone_from(theirs);
            }
        }
        if let Some(theirs) = &other.tls {
            match &mut self.tls {
                Some(mine) => mine.merge_from(theirs, conflict),
                None => self.tls = Some(theirs.clone()),
            }
        }
    }
}
