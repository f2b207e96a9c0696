//! Services as the proxy runs them: load balancers over servers and weighted services over
//! other services, both picking with smooth weighted round robin (the nginx algorithm: exact
//! proportions, well interleaved). Server health lives here too: an active flag written by the
//! health checker and a passive "down until" mark written by the forwarder after a connection
//! failure.
//!
//! These objects are built by `dynamic::assemble` and shared by `Arc` between snapshots when their
//! configuration did not change, so round-robin position and health survive reloads. They must not
//! do I/O: picking is a few atomic loads and one short uncontended lock.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use http::uri::{Authority, Scheme};

/// How the proxy talks to a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.1 with keep-alive (hyper negotiates nothing else over plain TCP).
    Http1,
    /// HTTP/2 over cleartext with prior knowledge (`h2c://` server URLs).
    H2c,
}

/// One upstream server of a load balancer.
#[derive(Debug)]
pub struct Server {
    /// The URL as configured, for the API, logs and sticky cookies.
    pub url: Box<str>,
    pub scheme: Scheme,
    pub authority: Authority,
    pub protocol: Protocol,
    /// Path prepended to the request path (only with `preservePath`), without trailing '/'.
    pub path_prefix: Box<str>,
    pub weight: u32,
    /// The value of a sticky cookie naming this server ([`sticky_id`] of the URL): 16 hex
    /// digits, kept inline (a table holds one server per service).
    sticky_id: [u8; STICKY_ID_LEN],
    /// Written by the active health checker; servers start healthy.
    healthy: AtomicBool,
    /// Passive mark: milliseconds since [`epoch`] until which the server is skipped.
    down_until_ms: AtomicU64,
}

impl Server {
    pub fn new(
        url: String,
        scheme: Scheme,
        authority: Authority,
        protocol: Protocol,
        path_prefix: String,
        weight: u32,
    ) -> Self {
        let mut id = [b'0'; STICKY_ID_LEN];
        id.copy_from_slice(&sticky_id(&url).as_bytes()[..STICKY_ID_LEN]);
        Server {
            sticky_id: id,
            url: url.into_boxed_str(),
            scheme,
            authority,
            protocol,
            path_prefix: path_prefix.into_boxed_str(),
            weight,
            healthy: AtomicBool::new(true),
            down_until_ms: AtomicU64::new(0),
        }
    }

    /// The value of a sticky cookie naming this server.
    pub fn sticky_id(&self) -> &str {
        // Hex digits only (`sticky_id`), so always UTF-8.
        std::str::from_utf8(&self.sticky_id).unwrap_or_default()
    }

    /// `Host` value when the service does not pass the client's (`passHostHeader = false`):
    /// the server's authority. Made when asked; few services set it.
    pub fn host_header(&self) -> http::HeaderValue {
        http::HeaderValue::from_str(self.authority.as_str())
            .unwrap_or_else(|_| http::HeaderValue::from_static("localhost"))
    }

    /// Active health as last reported by the checker.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Record an active health check result; returns true when the state changed.
    pub fn set_healthy(&self, up: bool) -> bool {
        self.healthy.swap(up, Ordering::Relaxed) != up
    }

    /// Skip this server for `cooldown` after a connection-level failure.
    pub fn mark_failed(&self, now: Instant, cooldown: Duration) {
        let until = millis_since_epoch(now) + cooldown.as_millis() as u64;
        self.down_until_ms.store(until, Ordering::Relaxed);
    }

    /// A successful exchange clears the passive mark.
    pub fn mark_ok(&self) {
        if self.down_until_ms.load(Ordering::Relaxed) != 0 {
            self.down_until_ms.store(0, Ordering::Relaxed);
        }
    }

    /// Healthy and not passively marked at `now`.
    pub fn available(&self, now: Instant) -> bool {
        self.is_healthy() && self.down_until_ms.load(Ordering::Relaxed) <= millis_since_epoch(now)
    }
}

/// Process-wide reference instant, so passive marks fit in an `AtomicU64`.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn millis_since_epoch(now: Instant) -> u64 {
    now.saturating_duration_since(epoch()).as_millis() as u64
}

/// Smooth weighted round robin state: one running weight per member.
#[derive(Debug, Default)]
pub struct Swrr {
    current: Mutex<Vec<i64>>,
}

impl Swrr {
    /// Pick among members `0..weights.len()` for which `eligible` holds. Members with weight 0 are
    /// never picked. Returns None when nobody is eligible.
    pub fn pick(&self, weights: &[u32], eligible: impl Fn(usize) -> bool) -> Option<usize> {
        let mut current = match self.current.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if current.len() != weights.len() {
            current.clear();
            current.resize(weights.len(), 0);
        }
        let mut total = 0i64;
        let mut best: Option<usize> = None;
        for (i, &w) in weights.iter().enumerate() {
            if w == 0 || !eligible(i) {
                continue;
            }
            current[i] += i64::from(w);
            total += i64::from(w);
            if best.is_none_or(|b| current[i] > current[b]) {
                best = Some(i);
            }
        }
        let b = best?;
        current[b] -= total;
        Some(b)
    }
}

/// Sticky sessions by cookie, as Traefik's `sticky.cookie`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StickyCookie {
    pub name: String,
    pub secure: bool,
    pub http_only: bool,
    pub same_site: String,
    pub max_age: i64,
    pub path: String,
}

/// A load balancer over servers.
#[derive(Debug)]
pub struct LoadBalancer {
    pub servers: Vec<Arc<Server>>,
    weights: Vec<u32>,
    swrr: Swrr,
    pub pass_host_header: bool,
    /// Boxed: most services have none, and the table holds one of these per service.
    pub sticky: Option<Box<StickyCookie>>,
    pub health: Option<Arc<HealthCheck>>,
}

impl LoadBalancer {
    pub fn new(
        servers: Vec<Arc<Server>>,
        pass_host_header: bool,
        sticky: Option<Box<StickyCookie>>,
        health: Option<Arc<HealthCheck>>,
    ) -> Self {
        // One server needs no weights (`pick` takes it directly).
        let weights = match servers.len() {
            1 => Vec::new(),
            _ => servers.iter().map(|s| s.weight).collect(),
        };
        LoadBalancer {
            servers,
            weights,
            swrr: Swrr::default(),
            pass_host_header,
            sticky,
            health,
        }
    }

    /// Next server to try, skipping those in `exclude` (already failed in this request) and
    /// unavailable ones.
    pub fn pick(&self, now: Instant, exclude: &[usize]) -> Option<usize> {
        if let [only] = &self.servers[..] {
            // Nothing to balance: no shared state to lock (or allocate, per service).
            let ok = only.weight > 0 && !exclude.contains(&0) && only.available(now);
            return ok.then_some(0);
        }
        self.swrr.pick(&self.weights, |i| {
            !exclude.contains(&i) && self.servers[i].available(now)
        })
    }

    /// When [`pick`](Self::pick) finds nobody because every server is passively marked down:
    /// the marked one whose mark ends first, among servers that can take traffic at all
    /// (weight above 0, actively healthy, not in `exclude`). Better one more try than a 503
    /// while a server may be back; never a server the configuration or the checker ruled out.
    pub fn fallback(&self, exclude: &[usize]) -> Option<usize> {
        (0..self.servers.len())
            .filter(|i| !exclude.contains(i))
            .filter(|&i| self.servers[i].weight > 0 && self.servers[i].is_healthy())
            .min_by_key(|&i| self.servers[i].down_until_ms.load(Ordering::Relaxed))
    }

    /// The server whose sticky id is `id`, when it is available.
    pub fn sticky_server(&self, id: &str, now: Instant) -> Option<usize> {
        self.servers
            .iter()
            .position(|s| s.sticky_id() == id)
            .filter(|&i| self.servers[i].available(now))
    }

    pub fn any_available(&self, now: Instant) -> bool {
        self.servers
            .iter()
            .any(|s| s.weight > 0 && s.available(now))
    }
}

/// Hex digits of a server's sticky id.
const STICKY_ID_LEN: usize = 16;

/// Stable opaque id of a server for sticky cookies, Traefik's: the first 16 hex digits of the
/// SHA-256 of its URL, so clients pinned by Traefik stay pinned after a switch to boma.
pub fn sticky_id(url: &str) -> String {
    hex_prefix(
        ring::digest::digest(&ring::digest::SHA256, url.as_bytes()).as_ref(),
        STICKY_ID_LEN,
    )
}

/// Traefik's sticky cookie name for a service without one: `_` and the first 5 hex digits of
/// the SHA-1 of `_TRAEFIK_BACKEND_<service>` (the qualified name, e.g. `web@docker`).
pub fn default_cookie_name(service: &str) -> String {
    let digest = ring::digest::digest(
        &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
        format!("_TRAEFIK_BACKEND_{service}").as_bytes(),
    );
    format!("_{}", hex_prefix(digest.as_ref(), 5))
}

fn hex_prefix(bytes: &[u8], digits: usize) -> String {
    let mut out = String::with_capacity(digits + 1);
    for b in bytes {
        out.push_str(&format!("{b:02x}"));
        if out.len() >= digits {
            break;
        }
    }
    out.truncate(digits);
    out
}

/// A weighted service: picks among child services (canary releases).
#[derive(Debug)]
pub struct Weighted {
    pub children: Vec<(String, Arc<Service>)>,
    weights: Vec<u32>,
    swrr: Swrr,
}

impl Weighted {
    pub fn new(children: Vec<(String, Arc<Service>, u32)>) -> Self {
        let weights = children.iter().map(|c| c.2).collect();
        Weighted {
            children: children.into_iter().map(|(n, s, _)| (n, s)).collect(),
            weights,
            swrr: Swrr::default(),
        }
    }
}

/// Services boma answers itself, named `<name>@internal` as in Traefik.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Internal {
    /// `api@internal`: the JSON API.
    Api,
    /// `dashboard@internal`: the web dashboard.
    Dashboard,
    /// `ping@internal`: 200 "OK" while the gateway runs.
    Ping,
    /// `noop@internal`: answers nothing useful; for routers that only redirect.
    Noop,
    /// `localca@internal` (boma's): the local CA's certificate, for clients to download and
    /// trust; public, as a CA certificate is.
    LocalCa,
    /// `prometheus@internal`: the metrics in Prometheus' text format.
    Prometheus,
    /// What `api@internal` and `dashboard@internal` become behind an operator's router while
    /// `[admin] users` is not set: a page (or, under `/api`, a JSON error) saying how to set it.
    /// Never named in configuration.
    Locked,
}

impl Internal {
    pub fn from_name(name: &str) -> Option<Internal> {
        match name {
            "api@internal" => Some(Internal::Api),
            "dashboard@internal" => Some(Internal::Dashboard),
            "ping@internal" => Some(Internal::Ping),
            "noop@internal" => Some(Internal::Noop),
            "localca@internal" => Some(Internal::LocalCa),
            "prometheus@internal" => Some(Internal::Prometheus),
            _ => None,
        }
    }
}

/// A failover service: the main service while any of its servers is available, the fallback
/// otherwise.
#[derive(Debug)]
pub struct Failover {
    pub main: (String, Arc<Service>),
    pub fallback: (String, Arc<Service>),
}

/// What a router points at.
#[derive(Debug)]
pub enum Service {
    LoadBalancer(LoadBalancer),
    Weighted(Weighted),
    Failover(Failover),
    Internal(Internal),
}

/// Upper bound on weighted-service nesting followed while picking (assemble rejects cycles).
const MAX_DEPTH: usize = 8;

impl Service {
    /// Does any server below this service currently accept traffic?
    pub fn any_available(&self, now: Instant) -> bool {
        self.available_at(now, 0)
    }

    fn available_at(&self, now: Instant, depth: usize) -> bool {
        match self {
            Service::LoadBalancer(lb) => lb.any_available(now),
            Service::Internal(_) => true,
            Service::Failover(f) => {
                depth < MAX_DEPTH
                    && (f.main.1.available_at(now, depth + 1)
                        || f.fallback.1.available_at(now, depth + 1))
            }
            Service::Weighted(w) => {
                depth < MAX_DEPTH
                    && w.children
                        .iter()
                        .zip(&w.weights)
                        .any(|((_, s), &wt)| wt > 0 && s.available_at(now, depth + 1))
            }
        }
    }

    /// Resolve weighted services down to the load balancer that will serve this request
    /// (borrowed: a request holds the snapshot, not a count of each service it passes).
    pub fn resolve(&self, now: Instant) -> Option<&Service> {
        let mut cur = self;
        for _ in 0..MAX_DEPTH {
            cur = match cur {
                Service::LoadBalancer(_) | Service::Internal(_) => return Some(cur),
                Service::Failover(f) => {
                    if f.main.1.any_available(now) {
                        &f.main.1
                    } else {
                        &f.fallback.1
                    }
                }
                Service::Weighted(w) => {
                    let i = w
                        .swrr
                        .pick(&w.weights, |i| w.children[i].1.any_available(now))?;
                    &w.children[i].1
                }
            };
        }
        None
    }

    /// Every load balancer reachable from this service (for the API and health checks).
    pub fn load_balancer(&self) -> Option<&LoadBalancer> {
        match self {
            Service::LoadBalancer(lb) => Some(lb),
            Service::Weighted(_) | Service::Failover(_) | Service::Internal(_) => None,
        }
    }
}

/// A compiled `healthCheck` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    pub path: String,
    pub method: http::Method,
    pub scheme: Option<String>,
    pub port: Option<u16>,
    pub hostname: Option<String>,
    pub headers: http::HeaderMap,
    pub interval: Duration,
    pub unhealthy_interval: Duration,
    pub timeout: Duration,
    /// Expected status; None accepts 2xx and 3xx as Traefik does.
    pub status: Option<u16>,
}

impl HealthCheck {
    /// Is a probe answer with this status healthy?
    pub fn accepts(&self, status: u16) -> bool {
        match self.status {
            Some(want) => status == want,
            None => (200..400).contains(&status),
        }
    }

    /// The URL a probe of `server` asks.
    pub fn uri_for(&self, server: &Server) -> Option<http::Uri> {
        let scheme = self.scheme.as_deref().unwrap_or(server.scheme.as_str());
        let host = server.authority.host();
        let port = self.port.or(server.authority.port_u16());
        let authority = match (port, host.contains(':') && !host.starts_with('[')) {
            (Some(p), true) => format!("[{host}]:{p}"),
            (Some(p), false) => format!("{host}:{p}"),
            (None, _) => host.to_string(),
        };
        let path = if self.path.starts_with('/') {
            self.path.clone()
        } else {
            format!("/{}", self.path)
        };
        format!("{scheme}://{authority}{}{path}", server.path_prefix)
            .parse()
            .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(url: &str, weight: u32) -> Arc<Server> {
        let uri: http::Uri = url.parse().unwrap();
        Arc::new(Server::new(
            url.to_string(),
            uri.scheme().cloned().unwrap(),
            uri.authority().cloned().unwrap(),
            Protocol::Http1,
            String::new(),
            weight,
        ))
    }

    #[test]
    fn swrr_exact_proportions_and_interleaving() {
        let swrr = Swrr::default();
        let weights = [5, 1, 1];
        let picks: Vec<usize> = (0..7)
            .map(|_| swrr.pick(&weights, |_| true).unwrap())
            .collect();
        // nginx's documented sequence for {a:5, b:1, c:1}
        assert_eq!(picks, vec![0, 0, 1, 0, 2, 0, 0]);
        let mut counts = [0; 3];
        for _ in 0..700 {
            counts[swrr.pick(&weights, |_| true).unwrap()] += 1;
        }
        assert_eq!(counts, [500, 100, 100]);
    }

    #[test]
    fn swrr_skips_ineligible_and_zero_weight() {
        let swrr = Swrr::default();
        assert_eq!(swrr.pick(&[0, 0], |_| true), None);
        assert_eq!(swrr.pick(&[3, 1], |i| i == 1), Some(1));
        assert_eq!(swrr.pick(&[3, 1], |_| false), None);
    }

    #[test]
    fn passive_mark_expires() {
        let s = server("http://127.0.0.1:1", 1);
        let now = Instant::now();
        assert!(s.available(now));
        s.mark_failed(now, Duration::from_secs(10));
        assert!(!s.available(now));
        assert!(s.available(now + Duration::from_secs(11)));
        s.mark_ok();
        assert!(s.available(now));
    }

    #[test]
    fn all_marked_down_falls_back_to_the_soonest_back_never_to_weight_0() {
        let zero = server("http://127.0.0.1:1", 0);
        let late = server("http://127.0.0.1:2", 1);
        let soon = server("http://127.0.0.1:3", 1);
        let sick = server("http://127.0.0.1:4", 1);
        let lb = LoadBalancer::new(
            vec![zero.clone(), late.clone(), soon.clone(), sick.clone()],
            true,
            None,
            None,
        );
        let now = Instant::now();
        late.mark_failed(now, Duration::from_secs(30));
        soon.mark_failed(now, Duration::from_secs(5));
        sick.set_healthy(false);
        assert_eq!(lb.pick(now, &[]), None);
        assert_eq!(lb.fallback(&[]), Some(2));
        assert_eq!(lb.fallback(&[2]), Some(1));
        assert_eq!(
            lb.fallback(&[1, 2]),
            None,
            "weight 0 and unhealthy are never tried"
        );
    }

    #[test]
    fn failover_switches_while_main_is_down() {
        let a = server("http://127.0.0.1:1", 1);
        let b = server("http://127.0.0.1:2", 1);
        let main = Arc::new(Service::LoadBalancer(LoadBalancer::new(
            vec![a.clone()],
            true,
            None,
            None,
        )));
        let spare = Arc::new(Service::LoadBalancer(LoadBalancer::new(
            vec![b],
            true,
            None,
            None,
        )));
        let f = Arc::new(Service::Failover(Failover {
            main: ("main".into(), main.clone()),
            fallback: ("spare".into(), spare.clone()),
        }));
        let now = Instant::now();
        assert!(std::ptr::eq(f.resolve(now).unwrap(), &*main));
        a.set_healthy(false);
        assert!(std::ptr::eq(f.resolve(now).unwrap(), &*spare));
        a.set_healthy(true);
        assert!(std::ptr::eq(f.resolve(now).unwrap(), &*main));
    }

    #[test]
    fn weighted_resolves_to_healthy_child() {
        let a = server("http://127.0.0.1:1", 1);
        let b = server("http://127.0.0.1:2", 1);
        let sa = Arc::new(Service::LoadBalancer(LoadBalancer::new(
            vec![a.clone()],
            true,
            None,
            None,
        )));
        let sb = Arc::new(Service::LoadBalancer(LoadBalancer::new(
            vec![b],
            true,
            None,
            None,
        )));
        let w = Arc::new(Service::Weighted(Weighted::new(vec![
            ("a".into(), sa.clone(), 3),
            ("b".into(), sb.clone(), 1),
        ])));
        let now = Instant::now();
        let mut hits_a = 0;
        for _ in 0..400 {
            let lb = w.resolve(now).unwrap();
            if std::ptr::eq(lb, &*sa) {
                hits_a += 1;
            }
        }
        assert_eq!(hits_a, 300);
        a.set_healthy(false);
        for _ in 0..10 {
            assert!(std::ptr::eq(w.resolve(now).unwrap(), &*sb));
        }
    }
}
