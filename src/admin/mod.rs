//! The admin side: the JSON API (`api@internal`), the dashboard (`dashboard@internal`) and
//! `ping@internal`, answered from the current snapshot. Paths and shapes follow Traefik's API
//! (`/api/http/routers`, `/api/http/services`, `/api/overview`, `/api/entrypoints`,
//! `/api/version`, `/api/rawdata`) so existing scripts keep working; `/api/problems`,
//! `/api/dhcp` (state, counters, `/api/dhcp/leases`), `/api/tls` (certificates and local CAs)
//! and `localca@internal` (the local CA's certificate, public) are boma's own.
//!
//! It only reads: nothing here changes configuration. Who may reach it is decided by routers and
//! middlewares (Traefik's model): `[api] insecure = true` publishes it on the `traefik`
//! entrypoint without credentials; a router of the operator's to `api@internal` or
//! `dashboard@internal` always asks for `[admin] users` (the assembler adds the check, see
//! `dynamic::AdminGate`), and until they are set answers only how to set them (`locked.html`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use http::{Method, Response, StatusCode, header};
use serde_json::{Value, json};

mod prometheus;

use crate::dynamic::{Snapshot, qualify};
use crate::runtime::balance::{Internal, Service};

const DASHBOARD: &str = include_str!("dashboard.html");

/// Connection counters of one entrypoint (all workers), written by the proxy's accept loop.
#[derive(Debug, Default)]
pub struct ConnStats {
    /// Connections open now.
    pub open: AtomicU64,
    /// Connections accepted since start.
    pub accepted: AtomicU64,
    /// Connections closed at once because their source already had
    /// `limits.max_connections_per_ip` open.
    pub refused_per_ip: AtomicU64,
    /// TLS connections closed before their first request: a handshake that failed, was
    /// refused (`sniStrict`, an option set that did not compile) or did not finish in time.
    pub tls_failed: AtomicU64,
}

impl ConnStats {
    fn json(&self) -> Value {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        json!({
            "open": get(&self.open),
            "accepted": get(&self.accepted),
            "refusedPerIP": get(&self.refused_per_ip),
            "tlsFailed": get(&self.tls_failed),
        })
    }
}

/// One entrypoint as the API lists it.
#[derive(Debug, Clone)]
pub struct EntryPointInfo {
    pub name: String,
    pub address: SocketAddr,
    pub connections: Arc<ConnStats>,
}

/// Static facts the API reports.
#[derive(Debug, Clone)]
pub struct Info {
    pub entrypoints: Vec<EntryPointInfo>,
    pub started: Instant,
    pub start_date: std::time::SystemTime,
    /// The DHCP server's state and counters (`/api/dhcp`), when it runs.
    pub dhcp: Option<crate::net::dhcp::Handle>,
    /// A/B updates: the running slot and the last update's state (`/api/version`), uploads.
    pub update: Arc<crate::update::Updater>,
    /// The local CAs that opened, by resolver name (`localca@internal`, `/api/tls`).
    pub local_cas: Vec<(String, Arc<crate::runtime::tls::local_ca::LocalCa>)>,
    /// The request metrics, with `[metrics.prometheus]`.
    pub metrics: Option<Arc<crate::metrics::Registry>>,
    /// The DNS server's counters, when it runs.
    pub dns: Option<Arc<crate::dns::Resolver>>,
}

/// Answer a request routed to an internal service.
pub fn respond(
    which: Internal,
    method: &Method,
    path: &str,
    snapshot: &Snapshot,
    info: &Info,
) -> Response<Bytes> {
    if method != Method::GET && method != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    }
    match which {
        Internal::Ping => text(StatusCode::OK, "OK"),
        Internal::Locked => locked(path),
        Internal::Noop => text(StatusCode::OK, ""),
        Internal::LocalCa => local_ca(info),
        Internal::Prometheus => {
            let mut r = Response::new(Bytes::from(prometheus::render(snapshot, info)));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            r
        }
        Internal::Dashboard => match path {
            "/" | "" => redirect("/dashboard/"),
            "/dashboard" => redirect("/dashboard/"),
            p if p.starts_with("/dashboard/") => {
                let mut r = Response::new(Bytes::from_static(DASHBOARD.as_bytes()));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static("text/html; charset=utf-8"),
                );
                r
            }
            _ => text(StatusCode::NOT_FOUND, "404 page not found\n"),
        },
        Internal::Api if path == "/api/tls/ca.crt" => local_ca(info),
        Internal::Api => match api(path, snapshot, info) {
            Some(v) => {
                let mut r = Response::new(Bytes::from(v.to_string()));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static("application/json"),
                );
                r
            }
            None => text(StatusCode::NOT_FOUND, "404 page not found\n"),
        },
    }
}

/// `localca@internal`: the first local CA's certificate as a file a phone or laptop offers to
/// install (404 when no local CA is configured).
fn local_ca(info: &Info) -> Response<Bytes> {
    let Some((name, ca)) = info.local_cas.first() else {
        return text(StatusCode::NOT_FOUND, "no local CA is configured\n");
    };
    let mut r = Response::new(Bytes::from(ca.ca_pem().to_string()));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/x-x509-ca-cert"),
    );
    let file = format!("attachment; filename=\"{name}-ca.crt\"");
    if let Ok(v) = header::HeaderValue::from_str(&file) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    r
}

/// `/api/tls`: the configured certificates (names, expiry, file) and the local CAs with the
/// certificates they issued.
fn tls(s: &Snapshot, info: &Info) -> Value {
    let certificates: Vec<Value> = (s.tls.certificates())
        .map(|c| {
            json!({
                "source": c.source,
                "names": c.facts.names,
                "ips": c.facts.ips,
                "subject": c.facts.subject,
                "issuer": c.facts.issuer,
                "notBefore": c.facts.not_before,
                "notAfter": c.facts.not_after,
            })
        })
        .collect();
    let resolvers: Vec<Value> = (info.local_cas.iter())
        .map(|(name, ca)| {
            json!({
                "name": name,
                "kind": "localCA",
                "issued": ca.issued.load(Ordering::Relaxed),
                "certificates": (ca.leaves().into_iter())
                    .map(|(host, not_after)| json!({"host": host, "notAfter": not_after}))
                    .collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({"certificates": certificates, "resolvers": resolvers})
}

/// The API and dashboard while `[admin] users` is not set: 403, with how to set it (an HTML page
/// for a browser, JSON under `/api`).
fn locked(path: &str) -> Response<Bytes> {
    let (body, kind) = if path == "/api" || path.starts_with("/api/") {
        let message = "the API needs credentials: set [admin] users in boma.toml (see /dashboard/)";
        (
            Bytes::from(json!({ "message": message }).to_string()),
            "application/json",
        )
    } else {
        (
            Bytes::from_static(LOCKED_PAGE.as_bytes()),
            "text/html; charset=utf-8",
        )
    };
    let mut r = Response::new(body);
    *r.status_mut() = StatusCode::FORBIDDEN;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, header::HeaderValue::from_static(kind));
    r
}

const LOCKED_PAGE: &str = include_str!("locked.html");

fn text(status: StatusCode, body: &'static str) -> Response<Bytes> {
    let mut r = Response::new(Bytes::from_static(body.as_bytes()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn redirect(to: &'static str) -> Response<Bytes> {
    let mut r = text(StatusCode::FOUND, "");
    r.headers_mut()
        .insert(header::LOCATION, header::HeaderValue::from_static(to));
    r
}

fn provider_of(name: &str) -> &str {
    name.rsplit_once('@').map_or("", |(_, p)| p)
}

/// `/api/http/middlewares`: every compiled middleware with the routers that use it.
fn middlewares(s: &Snapshot) -> Vec<Value> {
    s.middlewares
        .iter()
        .map(|(name, m)| {
            let used_by: Vec<&String> = (s.routers.keys())
                .filter(|r| {
                    let provider = provider_of(r);
                    s.router_config(r).is_some_and(|c| {
                        c.middlewares.iter().any(|x| qualify(x, provider) == *name)
                    })
                })
                .collect();
            json!({
                "name": name,
                "provider": provider_of(name),
                "type": m.type_name(),
                "status": "enabled",
                "usedBy": used_by,
            })
        })
        .collect()
}

/// `/api/dns`: the local zone's names (those of routers, static hosts and DHCP clients).
fn dns(s: &Snapshot, info: &Info) -> Value {
    let Some(dns) = &info.dns else {
        return json!({"status": "off"});
    };
    let zone = dns.zone();
    let origin = zone.origin().to_utf8();
    let origin = origin.trim_end_matches('.');
    let (entries, wildcard) = zone.entries();
    let mut names: Vec<Value> = (entries.into_iter())
        .map(|(name, ips)| {
            let answer: Vec<String> = ips.iter().map(|ip| ip.to_string()).collect();
            json!({"name": name, "addresses": answer})
        })
        .collect();
    if wildcard {
        // Router names the wildcard answers (with the gateway's address) are not stored.
        for host in &s.hosts {
            let inside = host == origin || host.ends_with(&format!(".{origin}"));
            if inside && !names.iter().any(|n| n["name"] == json!(host)) {
                names.push(json!({"name": host, "addresses": []}));
            }
        }
    }
    json!({"status": "on", "zone": origin, "wildcard": wildcard, "names": names})
}

fn routers(s: &Snapshot) -> Vec<Value> {
    s.routers
        .iter()
        .map(|(name, r)| {
            let provider = provider_of(name);
            let mut v = json!({
                "name": name,
                "provider": provider,
                "priority": r.priority,
                "status": r.status(),
            });
            if let Some(c) = s.router_config(name) {
                let eps = if c.entry_points.is_empty() {
                    &s.default_entrypoints
                } else {
                    &c.entry_points
                };
                v["rule"] = json!(c.rule);
                v["service"] = json!(qualify(&c.service, provider));
                v["entryPoints"] = json!(eps);
                let mws: Vec<String> = c.middlewares.iter().map(|m| qualify(m, provider)).collect();
                v["middlewares"] = json!(mws);
            }
            if let Some(e) = &r.error {
                v["error"] = json!([e]);
            }
            v
        })
        .collect()
}

fn services(s: &Snapshot) -> Vec<Value> {
    let now = Instant::now();
    s.services
        .iter()
        .map(|(name, svc)| {
            let mut v = json!({
                "name": name,
                "provider": provider_of(name),
                "status": if svc.any_available(now) { "enabled" } else { "disabled" },
            });
            match &**svc {
                Service::LoadBalancer(lb) => {
                    v["type"] = json!("loadbalancer");
                    v["loadBalancer"] = json!({
                        "servers": lb.servers.iter().map(|srv| json!({"url": srv.url, "weight": srv.weight})).collect::<Vec<_>>(),
                        "passHostHeader": lb.pass_host_header,
                    });
                    let status: serde_json::Map<String, Value> = lb
                        .servers
                        .iter()
                        .map(|srv| {
                            let up = if srv.available(now) { "UP" } else { "DOWN" };
                            (srv.url.to_string(), json!(up))
                        })
                        .collect();
                    v["serverStatus"] = Value::Object(status);
                }
                Service::Weighted(w) => {
                    v["type"] = json!("weighted");
                    v["weighted"] = json!({
                        "services": w.children.iter().map(|(n, _)| json!({"name": n})).collect::<Vec<_>>(),
                    });
                }
                Service::Failover(f) => {
                    v["type"] = json!("failover");
                    v["failover"] = json!({"service": f.main.0, "fallback": f.fallback.0});
                }
                Service::Internal(_) => v["type"] = json!("internal"),
            }
            v
        })
        .collect()
}

/// Traefik's `/api/version` (`Version`, `Codename`, `startDate`) plus the image's version,
/// board, the running slot and the last update (`slot`, `update`).
fn version(info: &Info) -> Value {
    let mut v = info.update.status_json();
    let image = info.update.system().ok().map(|s| s.version.clone());
    if let Some(o) = v.as_object_mut() {
        o.insert(
            "Version".into(),
            json!(image.as_deref().unwrap_or(env!("CARGO_PKG_VERSION"))),
        );
        o.insert("Codename".into(), json!("boma"));
        o.insert("boma".into(), json!(env!("CARGO_PKG_VERSION")));
        o.insert(
            "startDate".into(),
            json!(crate::linelog::Utc::from(info.start_date).rfc3339()),
        );
    }
    v
}

fn api(path: &str, s: &Snapshot, info: &Info) -> Option<Value> {
    let path = path.trim_end_matches('/');
    let by_name =
        |list: Vec<Value>, name: &str| list.into_iter().find(|v| v["name"].as_str() == Some(name));
    Some(match path {
        "/api/version" => version(info),
        "/api/overview" => {
            let total = s.routers.len();
            let errors = s.routers.values().filter(|r| r.error.is_some()).count();
            json!({
                "http": {
                    "routers": {"total": total, "warnings": 0, "errors": errors},
                    "services": {"total": s.services.len(), "warnings": 0, "errors": 0},
                },
                "problems": s.problems.len(),
                "generation": s.generation,
                "uptimeSeconds": info.started.elapsed().as_secs(),
            })
        }
        "/api/entrypoints" => json!(
            (info.entrypoints.iter())
                .map(|e| json!({
                    "name": e.name,
                    "address": e.address.to_string(),
                    "connections": e.connections.json(),
                }))
                .collect::<Vec<_>>()
        ),
        "/api/http/routers" => json!(routers(s)),
        "/api/http/services" => json!(services(s)),
        "/api/http/middlewares" => json!(middlewares(s)),
        "/api/dns" => dns(s, info),
        "/api/problems" => json!(s.problems),
        "/api/providers/docker" => json!(crate::providers::docker::engines()),
        "/api/tls" => tls(s, info),
        "/api/dhcp/leases" => json!(*s.leases),
        "/api/dhcp" => match &info.dhcp {
            Some(h) => json!({
                "status": *h.state.borrow(),
                "stats": &*h.stats,
                "leases": s.leases.len(),
            }),
            None => json!({"status": {"state": "off"}}),
        },
        "/api/rawdata" => json!({
            "routers": routers(s),
            "services": services(s),
            "problems": s.problems,
        }),
        p => {
            if let Some(name) = p.strip_prefix("/api/http/routers/") {
                by_name(routers(s), name)?
            } else if let Some(name) = p.strip_prefix("/api/http/services/") {
                by_name(services(s), name)?
            } else {
                return None;
            }
        }
    })
}
