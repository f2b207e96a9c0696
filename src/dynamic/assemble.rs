//! `assemble`: a pure function from every provider's current fragment (and the previous
//! snapshot, for reuse) to a new snapshot. It qualifies names (`x` in the file provider is
//! `x@file`), compiles rules and middlewares, builds balancers, checks references and cycles, and
//! records every fault as a problem instead of failing.
//!
//! Services and middlewares whose configuration did not change keep their previous `Arc`, so
//! balancer position, health, rate-limit buckets, in-flight counts and the basicAuth cache
//! survive a reload. It must not do I/O or read the clock.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use http::uri::{Authority, Scheme};

use super::schema;
use super::table::{Route, RouteTable};
use super::{Fragment, Problem, RouterStatus, Snapshot};
use crate::rule::{self, Rule};
use crate::runtime::balance::{
    Failover, HealthCheck, Internal, LoadBalancer, Protocol, Server, Service, StickyCookie,
    Weighted,
};
use crate::runtime::middlewares::{self, Compiled, Middleware};

/// An entrypoint as assemble needs to know it.
#[derive(Debug, Clone)]
pub struct EntryPointSpec {
    pub name: String,
    pub as_default: bool,
    /// Middlewares applied before every router's own, qualified or not.
    pub middlewares: Vec<String>,
}

/// The static facts assemble works with.
#[derive(Debug, Clone)]
pub struct AssembleCtx {
    pub entrypoints: Vec<EntryPointSpec>,
    pub max_routes: usize,
    /// Bounds on the live state of compiled middlewares.
    pub middleware_bounds: middlewares::Bounds,
}

/// Qualify `name` as provided by namespace `ns`: `x` → `x@ns`, `x@other` stays.
fn qualify(name: &str, ns: &str) -> String {
    if name.contains('@') {
        name.to_string()
    } else {
        format!("{name}@{ns}")
    }
}

/// A router's parts once compiled.
struct BuiltRouter {
    rule: Rule,
    service: Arc<Service>,
    middlewares: Vec<Arc<Middleware>>,
}

struct Builder<'a> {
    prev: Option<&'a Snapshot>,
    bounds: middlewares::Bounds,
    service_cfgs: BTreeMap<String, (&'a str, &'a schema::Service)>,
    mw_cfgs: BTreeMap<String, (&'a str, &'a middlewares::MiddlewareConfig)>,
    services: BTreeMap<String, Result<Arc<Service>, String>>,
    mws: HashMap<String, Result<Vec<Arc<Middleware>>, String>>,
    /// Every single (non-chain) middleware built, with its configuration, for the next reuse.
    compiled_mws: BTreeMap<String, (middlewares::MiddlewareConfig, Arc<Middleware>)>,
    problems: Vec<Problem>,
}

/// Build the snapshot for `fragments` (keyed by provider namespace).
pub fn assemble(
    fragments: &BTreeMap<String, Fragment>,
    ctx: &AssembleCtx,
    prev: Option<&Snapshot>,
    generation: u64,
) -> Snapshot {
    let mut b = Builder {
        prev,
        bounds: ctx.middleware_bounds,
        service_cfgs: BTreeMap::new(),
        mw_cfgs: BTreeMap::new(),
        services: BTreeMap::new(),
        mws: HashMap::new(),
        compiled_mws: BTreeMap::new(),
        problems: Vec::new(),
    };
    let mut routers: BTreeMap<String, (&str, &schema::Router)> = BTreeMap::new();
    for (ns, frag) in fragments {
        b.problems.extend(frag.problems.iter().cloned());
        for kind in frag.config.unsupported_sections() {
            b.problems.push(Problem::new(
                format!("provider {ns}"),
                format!("{kind} configuration is not supported yet and was ignored"),
            ));
        }
        let Some(http) = &frag.config.http else {
            continue;
        };
        for (name, r) in &http.routers {
            routers.insert(qualify(name, ns), (ns.as_str(), r));
        }
        for (name, s) in &http.services {
            b.service_cfgs.insert(qualify(name, ns), (ns.as_str(), s));
        }
        for (name, m) in &http.middlewares {
            b.mw_cfgs.insert(qualify(name, ns), (ns.as_str(), m));
        }
    }
    let names: Vec<String> = b.service_cfgs.keys().cloned().collect();
    for name in &names {
        let _ = b.service(name, &mut Vec::new());
    }

    let default_eps: Vec<&str> = {
        let marked: Vec<&str> = ctx
            .entrypoints
            .iter()
            .filter(|e| e.as_default)
            .map(|e| e.name.as_str())
            .collect();
        if marked.is_empty() {
            ctx.entrypoints.iter().map(|e| e.name.as_str()).collect()
        } else {
            marked
        }
    };
    let mut per_ep: HashMap<String, Vec<Arc<Route>>> = HashMap::new();
    let mut statuses = BTreeMap::new();
    let mut hosts = BTreeSet::new();
    let mut route_count = 0usize;
    for (name, (ns, r)) in &routers {
        let eps: Vec<String> = if r.entry_points.is_empty() {
            default_eps.iter().map(|s| s.to_string()).collect()
        } else {
            r.entry_points.clone()
        };
        let service_name = qualify(&r.service, ns);
        let mut status = RouterStatus {
            rule: r.rule.clone(),
            service: service_name.clone(),
            entry_points: eps.clone(),
            middlewares: r.middlewares.iter().map(|m| qualify(m, ns)).collect(),
            priority: 0,
            status: "enabled",
            error: None,
        };
        match b.router(ns, r, &service_name) {
            Err(why) => {
                b.problems
                    .push(Problem::new(format!("router {name}"), why.clone()));
                status.status = "disabled";
                status.error = Some(why);
            }
            Ok(BuiltRouter {
                rule: rule_,
                service,
                middlewares: own_mws,
            }) => {
                let priority = r
                    .priority
                    .filter(|&p| p != 0)
                    .unwrap_or_else(|| rule::default_priority(&r.rule));
                status.priority = priority;
                hosts.extend(rule_.mentioned_hosts());
                let rule_ = Arc::new(rule_);
                let mut served = false;
                for ep in &eps {
                    let Some(spec) = ctx.entrypoints.iter().find(|e| &e.name == ep) else {
                        b.problems.push(Problem::new(
                            format!("router {name}"),
                            format!("entrypoint `{ep}` does not exist"),
                        ));
                        continue;
                    };
                    let mut chain = Vec::new();
                    let mut ok = true;
                    for m in &spec.middlewares {
                        match b.middleware(&qualify(m, "file"), &mut Vec::new()) {
                            Ok(ms) => chain.extend(ms),
                            Err(why) => {
                                b.problems.push(Problem::new(
                                    format!("entrypoint {ep}"),
                                    format!("middleware {m}: {why}"),
                                ));
                                ok = false;
                            }
                        }
                    }
                    if !ok {
                        continue;
                    }
                    if route_count >= ctx.max_routes {
                        b.problems.push(Problem::new(
                            format!("router {name}"),
                            format!(
                                "route limit of {} reached (limits.max_routes)",
                                ctx.max_routes
                            ),
                        ));
                        break;
                    }
                    route_count += 1;
                    chain.extend(own_mws.iter().cloned());
                    per_ep.entry(ep.clone()).or_default().push(Arc::new(Route {
                        name: name.clone(),
                        rule: Arc::clone(&rule_),
                        priority,
                        service_name: service_name.clone(),
                        service: Arc::clone(&service),
                        middlewares: chain,
                    }));
                    served = true;
                }
                if !served {
                    status.status = "disabled";
                    status.error = Some("not attached to any entrypoint".into());
                }
            }
        }
        statuses.insert(name.clone(), status);
    }

    let tables = per_ep
        .into_iter()
        .map(|(ep, routes)| (ep, RouteTable::new(routes)))
        .collect();
    let mut services = BTreeMap::new();
    let mut service_configs = BTreeMap::new();
    for (name, built) in b.services {
        if let Ok(svc) = built {
            services.insert(name.clone(), svc);
            if let Some((_, cfg)) = b.service_cfgs.get(&name) {
                service_configs.insert(name, (*cfg).clone());
            }
        }
    }
    let mut problems = b.problems;
    problems.sort();
    problems.dedup();
    let leases = merged_leases(fragments, prev);
    Snapshot {
        generation,
        tables,
        services,
        service_configs,
        middlewares: b.compiled_mws,
        routers: statuses,
        problems,
        hosts,
        leases,
    }
}

/// All fragments' leases in address order; the previous snapshot's list when equal.
fn merged_leases(
    fragments: &BTreeMap<String, Fragment>,
    prev: Option<&Snapshot>,
) -> Arc<Vec<super::Lease>> {
    let mut all: Vec<super::Lease> = fragments
        .values()
        .flat_map(|f| f.leases.iter().cloned())
        .collect();
    all.sort();
    match prev {
        Some(p) if *p.leases == all => Arc::clone(&p.leases),
        _ => Arc::new(all),
    }
}

impl<'a> Builder<'a> {
    /// Compile one router: its rule, its service and its own middlewares.
    fn router(
        &mut self,
        ns: &str,
        r: &schema::Router,
        service_name: &str,
    ) -> Result<BuiltRouter, String> {
        if r.tls.is_some() {
            return Err("TLS routers are not supported yet".into());
        }
        if let Some(syntax) = &r.rule_syntax
            && !syntax.eq_ignore_ascii_case("v3")
            && !syntax.eq_ignore_ascii_case("v2")
        {
            return Err(format!("unknown ruleSyntax `{syntax}` (expected v3 or v2)"));
        }
        if r.rule.trim().is_empty() {
            return Err("the router has no rule".into());
        }
        let rule_ = Rule::parse(&r.rule).map_err(|e| format!("rule `{}`: {e}", r.rule))?;
        if r.service.is_empty() {
            return Err("the router names no service".into());
        }
        let service = self
            .service(service_name, &mut Vec::new())
            .map_err(|why| format!("service {service_name}: {why}"))?;
        let mut mws = Vec::new();
        for m in &r.middlewares {
            let q = qualify(m, ns);
            let built = self
                .middleware(&q, &mut Vec::new())
                .map_err(|why| format!("middleware {q}: {why}"))?;
            mws.extend(built);
        }
        Ok(BuiltRouter {
            rule: rule_,
            service,
            middlewares: mws,
        })
    }

    /// Build (or reuse) service `name`; `stack` detects cycles through weighted services.
    fn service(&mut self, name: &str, stack: &mut Vec<String>) -> Result<Arc<Service>, String> {
        if let Some(done) = self.services.get(name) {
            return done.clone();
        }
        if stack.iter().any(|s| s == name) {
            return Err(format!("cycle: {} -> {name}", stack.join(" -> ")));
        }
        let Some(&(ns, cfg)) = self.service_cfgs.get(name) else {
            let internal = Internal::from_name(name).ok_or("does not exist")?;
            let built = Ok(Arc::new(Service::Internal(internal)));
            self.services.insert(name.to_string(), built.clone());
            return built;
        };
        stack.push(name.to_string());
        let built = self.build_service(name, ns, cfg, stack);
        stack.pop();
        if let Err(why) = &built {
            self.problems
                .push(Problem::new(format!("service {name}"), why.clone()));
        }
        self.services.insert(name.to_string(), built.clone());
        built
    }

    fn build_service(
        &mut self,
        name: &str,
        ns: &str,
        cfg: &schema::Service,
        stack: &mut Vec<String>,
    ) -> Result<Arc<Service>, String> {
        let prev = self.prev.and_then(|p| {
            let same = p.service_configs.get(name) == Some(cfg);
            same.then(|| p.services.get(name)).flatten()
        });
        match cfg {
            schema::Service::LoadBalancer(lb) => {
                if let Some(prev) = prev {
                    return Ok(Arc::clone(prev));
                }
                build_load_balancer(name, lb).map(|lb| Arc::new(Service::LoadBalancer(lb)))
            }
            schema::Service::Weighted(w) => {
                let mut children = Vec::new();
                for child in &w.services {
                    let q = qualify(&child.name, ns);
                    let svc = self
                        .service(&q, stack)
                        .map_err(|why| format!("weighted child {q}: {why}"))?;
                    children.push((q, svc, child.weight));
                }
                if let Some(prev) = prev
                    && let Service::Weighted(pw) = &**prev
                    && pw.children.len() == children.len()
                    && pw
                        .children
                        .iter()
                        .zip(&children)
                        .all(|((_, a), (_, b, _))| Arc::ptr_eq(a, b))
                {
                    return Ok(Arc::clone(prev));
                }
                if children.is_empty() {
                    return Err("weighted service has no services".into());
                }
                Ok(Arc::new(Service::Weighted(Weighted::new(children))))
            }
            schema::Service::Failover(f) => {
                let main = qualify(&f.service, ns);
                let fallback = qualify(&f.fallback, ns);
                let main_svc = self
                    .service(&main, stack)
                    .map_err(|why| format!("failover service {main}: {why}"))?;
                let fallback_svc = self
                    .service(&fallback, stack)
                    .map_err(|why| format!("failover fallback {fallback}: {why}"))?;
                if let Some(prev) = prev
                    && let Service::Failover(pf) = &**prev
                    && Arc::ptr_eq(&pf.main.1, &main_svc)
                    && Arc::ptr_eq(&pf.fallback.1, &fallback_svc)
                {
                    return Ok(Arc::clone(prev));
                }
                Ok(Arc::new(Service::Failover(Failover {
                    main: (main, main_svc),
                    fallback: (fallback, fallback_svc),
                })))
            }
            other => Err(format!("{} services are not supported yet", other.kind())),
        }
    }

    /// Build middleware `name`, expanding chains; `stack` detects chain cycles.
    fn middleware(
        &mut self,
        name: &str,
        stack: &mut Vec<String>,
    ) -> Result<Vec<Arc<Middleware>>, String> {
        if let Some(done) = self.mws.get(name) {
            return done.clone();
        }
        if stack.iter().any(|s| s == name) {
            return Err(format!("chain cycle: {} -> {name}", stack.join(" -> ")));
        }
        let Some(&(ns, cfg)) = self.mw_cfgs.get(name) else {
            return Err("does not exist".into());
        };
        stack.push(name.to_string());
        let built = match self.reuse_middleware(name, cfg) {
            Some(same) => {
                let kept = (cfg.clone(), Arc::clone(&same));
                self.compiled_mws.insert(name.to_string(), kept);
                Ok(vec![same])
            }
            None => self.compile_middleware(name, ns, cfg, stack),
        };
        stack.pop();
        if let Err(why) = &built {
            self.problems
                .push(Problem::new(format!("middleware {name}"), why.clone()));
        }
        self.mws.insert(name.to_string(), built.clone());
        built
    }

    /// The previous snapshot's compiled middleware `name` when its configuration is unchanged
    /// (a chain is rebuilt from its members, which are reused one by one).
    fn reuse_middleware(
        &self,
        name: &str,
        cfg: &middlewares::MiddlewareConfig,
    ) -> Option<Arc<Middleware>> {
        let prev = self.prev?;
        if cfg.chain.is_some() {
            return None;
        }
        let (was, built) = prev.middlewares.get(name)?;
        (was == cfg).then(|| Arc::clone(built))
    }

    fn compile_middleware(
        &mut self,
        name: &str,
        ns: &str,
        cfg: &middlewares::MiddlewareConfig,
        stack: &mut Vec<String>,
    ) -> Result<Vec<Arc<Middleware>>, String> {
        match middlewares::compile_with(cfg, self.bounds) {
            Ok(Compiled::One(m)) => {
                let m = Arc::new(m);
                self.compiled_mws
                    .insert(name.to_string(), (cfg.clone(), Arc::clone(&m)));
                Ok(vec![m])
            }
            Ok(Compiled::Chain(names)) => {
                let mut all = Vec::new();
                let mut err = None;
                for n in names {
                    match self.middleware(&qualify(&n, ns), stack) {
                        Ok(ms) => all.extend(ms),
                        Err(why) => {
                            err = Some(format!("chain member {n}: {why}"));
                            break;
                        }
                    }
                }
                err.map_or(Ok(all), Err)
            }
            Err(e) => Err(e.to_string()),
        }
    }
}

/// Parse a server URL into a [`Server`].
fn build_server(s: &schema::Server) -> Result<Server, String> {
    let uri: http::Uri = s
        .url
        .parse()
        .map_err(|e| format!("server url `{}`: {e}", s.url))?;
    let (scheme, protocol) = match uri.scheme_str() {
        Some("http") => (Scheme::HTTP, Protocol::Http1),
        Some("h2c") => (Scheme::HTTP, Protocol::H2c),
        Some("https") => (Scheme::HTTPS, Protocol::Http1),
        _ => {
            return Err(format!(
                "server url `{}`: scheme must be http, https or h2c",
                s.url
            ));
        }
    };
    let authority: Authority = uri
        .authority()
        .cloned()
        .ok_or_else(|| format!("server url `{}` has no host", s.url))?;
    let authority = if authority.port().is_some() {
        authority
    } else {
        let port = if scheme == Scheme::HTTPS { 443 } else { 80 };
        format!("{}:{port}", authority.as_str())
            .parse()
            .map_err(|e| format!("server url `{}`: {e}", s.url))?
    };
    let path_prefix = if s.preserve_path {
        uri.path().trim_end_matches('/').to_string()
    } else {
        String::new()
    };
    Ok(Server::new(
        s.url.clone(),
        scheme,
        authority,
        protocol,
        path_prefix,
        s.effective_weight(),
    ))
}

fn build_load_balancer(name: &str, cfg: &schema::LoadBalancer) -> Result<LoadBalancer, String> {
    if cfg.servers.is_empty() {
        return Err("load balancer has no servers".into());
    }
    let servers = cfg
        .servers
        .iter()
        .map(|s| build_server(s).map(Arc::new))
        .collect::<Result<Vec<_>, _>>()?;
    let health = match &cfg.health_check {
        Some(h) => Some(Arc::new(build_health(h)?)),
        None => None,
    };
    let sticky = cfg
        .sticky
        .as_ref()
        .and_then(|s| s.cookie.as_ref())
        .map(|c| StickyCookie {
            name: c
                .name
                .clone()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| crate::runtime::balance::default_cookie_name(name)),
            secure: c.secure,
            http_only: c.http_only,
            same_site: c.same_site.clone().unwrap_or_default(),
            max_age: c.max_age,
            path: c.path.clone(),
        });
    Ok(LoadBalancer::new(
        servers,
        cfg.pass_host_header,
        sticky,
        health,
    ))
}

fn build_health(h: &schema::HealthCheck) -> Result<HealthCheck, String> {
    if h.mode != schema::HealthCheckMode::Http {
        return Err("health check mode grpc is not supported (only http)".into());
    }
    let method = match &h.method {
        Some(m) => http::Method::from_bytes(m.as_bytes())
            .map_err(|_| format!("health check method `{m}` is invalid"))?,
        None => http::Method::GET,
    };
    let mut headers = http::HeaderMap::new();
    for (k, v) in &h.headers {
        let name = http::HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| format!("health check header name `{k}` is invalid"))?;
        let value = http::HeaderValue::from_str(v)
            .map_err(|_| format!("health check header `{k}` has an invalid value"))?;
        headers.insert(name, value);
    }
    let interval = h.interval.to_std();
    Ok(HealthCheck {
        path: h.path.clone().unwrap_or_else(|| "/".into()),
        method,
        scheme: h.scheme.clone(),
        port: h.port,
        hostname: h.hostname.clone(),
        headers,
        interval,
        unhealthy_interval: h.unhealthy_interval.map_or(interval, |d| d.to_std()),
        timeout: h.timeout.to_std(),
        status: h.status,
    })
}
