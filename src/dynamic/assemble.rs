//! `assemble`: a pure function from every provider's current fragment (and the previous
//! snapshot, for reuse) to a new snapshot. It qualifies names (`x` in the file provider is
//! `x@file`), compiles rules and middlewares, builds balancers, checks references and cycles, and
//! records every fault as a problem instead of failing.
//!
//! Services and middlewares whose configuration did not change keep their previous `Arc`, so
//! balancer position, health, rate-limit buckets, in-flight counts and the basicAuth cache
//! survive a reload. It reads no clock; its only I/O is a basicAuth `usersFile` (at most 1 MiB),
//! read when that middleware is compiled, i.e. when its configuration is new or changed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use super::schema;
use super::services::build_load_balancer;
use super::table::{Route, RouteTable};
use super::{Fragment, Problem, RouterStatus, Snapshot, qualify};
use crate::rule::{self, Rule};
use crate::runtime::balance::{Failover, Internal, Service, Weighted};
use crate::runtime::middlewares::{self, Compiled, Middleware};

/// An entrypoint as assemble needs to know it.
#[derive(Debug, Clone)]
pub struct EntryPointSpec {
    pub name: String,
    pub as_default: bool,
    /// Middlewares applied before every router's own, qualified or not.
    pub middlewares: Vec<String>,
    /// `http.tls`: every router of this entrypoint is served over TLS, with these defaults.
    pub tls: Option<crate::config::EntryPointTls>,
}

/// The static facts assemble works with.
#[derive(Debug, Clone)]
pub struct AssembleCtx {
    pub entrypoints: Vec<EntryPointSpec>,
    pub max_routes: usize,
    /// Bounds on the live state of compiled middlewares.
    pub middleware_bounds: middlewares::Bounds,
    /// Who may use the API and dashboard through an operator's router.
    pub admin: AdminGate,
    /// The static configuration's certificate resolvers: opened, or why not.
    pub resolvers: BTreeMap<String, Result<Arc<crate::runtime::tls::local_ca::LocalCa>, String>>,
}

/// What guards `api@internal` and `dashboard@internal` when a router of any provider but
/// `internal` routes to them (the internal provider's routers exist only with `[api] insecure =
/// true`, the operator's explicit choice of no credentials).
#[derive(Debug, Clone, Default)]
pub enum AdminGate {
    /// No `[admin] users`: such routes answer only how to set them ([`Internal::Locked`]).
    #[default]
    Unset,
    /// basicAuth against `[admin] users`, after the router's own middlewares (so an
    /// ipAllowList refuses before a password is checked). One instance for the process, so its
    /// failure counts and cache survive reloads.
    Users(Arc<Middleware>),
}

impl AdminGate {
    /// The service a route to `service` from provider `ns` serves, and the gate to run last.
    fn apply(&self, ns: &str, service: &Arc<Service>) -> (Arc<Service>, Option<Arc<Middleware>>) {
        let admin = matches!(
            **service,
            Service::Internal(Internal::Api | Internal::Dashboard)
        );
        match self {
            _ if !admin || ns == "internal" => (Arc::clone(service), None),
            AdminGate::Unset => (Arc::new(Service::Internal(Internal::Locked)), None),
            AdminGate::Users(gate) => (Arc::clone(service), Some(Arc::clone(gate))),
        }
    }
}

/// Where a service or middleware comes from: its provider's namespace, its name in that
/// fragment, and its configuration (compared with the previous snapshot's for reuse).
type Src<'a, T> = (&'a str, &'a str, &'a T);

/// A router's parts once compiled.
struct BuiltRouter {
    rule: Rule,
    service: Arc<Service>,
    middlewares: Vec<Arc<Middleware>>,
}

struct Builder<'a> {
    prev: Option<&'a Snapshot>,
    bounds: middlewares::Bounds,
    /// By qualified name: (namespace, name in the fragment, configuration).
    service_cfgs: BTreeMap<String, Src<'a, schema::Service>>,
    mw_cfgs: BTreeMap<String, Src<'a, middlewares::MiddlewareConfig>>,
    services: BTreeMap<String, Result<Arc<Service>, String>>,
    mws: HashMap<String, Result<Vec<Arc<Middleware>>, String>>,
    /// Every single (non-chain) middleware built, for the next reuse.
    compiled_mws: BTreeMap<String, Arc<Middleware>>,
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
    let routers = b.collect(fragments);
    let names: Vec<String> = b.service_cfgs.keys().cloned().collect();
    for name in &names {
        let _ = b.service(name, &mut Vec::new());
    }
    let default_eps = default_entrypoints(ctx);
    let mut placed = Placed::default();
    for (name, (ns, r)) in &routers {
        let status = b.place_router(ctx, &default_eps, name, ns, r, &mut placed);
        placed.statuses.insert(name.clone(), status);
    }

    let tables = (placed.per_ep.into_iter())
        .map(|(ep, routes)| (ep, RouteTable::new(routes)))
        .collect();
    let tls_tables = (placed.per_ep_tls.into_iter())
        .map(|(ep, routes)| (ep, RouteTable::new(routes)))
        .collect();
    let tls = super::tls::setup(fragments, placed.tls_hosts, ctx, prev, &mut b.problems);
    let services = (b.services.into_iter())
        .filter_map(|(name, built)| Some((name, built.ok()?)))
        .collect();
    let mut problems = b.problems;
    problems.sort();
    problems.dedup();
    Snapshot {
        generation,
        tables,
        tls_tables,
        tls,
        services,
        middlewares: b.compiled_mws,
        configs: (fragments.iter())
            .map(|(ns, f)| (ns.clone(), Arc::clone(&f.config)))
            .collect(),
        // Rebuilt in bulk: full B-tree nodes, where the inserts above left them half full.
        routers: placed.statuses.into_iter().collect(),
        default_entrypoints: default_eps,
        problems,
        hosts: placed.hosts.into_iter().collect(),
        leases: merged_leases(fragments, prev),
    }
}

/// The entrypoints of routers that name none: those marked `asDefault`, or else all.
fn default_entrypoints(ctx: &AssembleCtx) -> Vec<String> {
    let marked: Vec<String> = (ctx.entrypoints.iter())
        .filter(|e| e.as_default)
        .map(|e| e.name.clone())
        .collect();
    if marked.is_empty() {
        ctx.entrypoints.iter().map(|e| e.name.clone()).collect()
    } else {
        marked
    }
}

/// What the routers placed so far add up to.
#[derive(Default)]
struct Placed {
    per_ep: HashMap<String, Vec<Arc<Route>>>,
    /// Routes served over TLS, by entrypoint.
    per_ep_tls: HashMap<String, Vec<Arc<Route>>>,
    /// TLS routers' hosts and the option sets they ask for.
    tls_hosts: super::tls::HostOptions,
    statuses: BTreeMap<String, RouterStatus>,
    hosts: BTreeSet<String>,
    routes: usize,
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
    /// Every fragment's problems and unsupported sections, and its routers, services and
    /// middlewares by qualified name (routers returned, the others kept for building).
    fn collect(
        &mut self,
        fragments: &'a BTreeMap<String, Fragment>,
    ) -> BTreeMap<String, (&'a str, &'a schema::Router)> {
        let mut routers = BTreeMap::new();
        for (ns, frag) in fragments {
            self.problems.extend(frag.problems.iter().cloned());
            for kind in frag.config.unsupported_sections() {
                self.problems.push(Problem::new(
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
                self.service_cfgs
                    .insert(qualify(name, ns), (ns.as_str(), name.as_str(), s));
            }
            for (name, m) in &http.middlewares {
                (self.mw_cfgs).insert(qualify(name, ns), (ns.as_str(), name.as_str(), m));
            }
        }
        routers
    }

    /// Compile router `name` and add a route for it on each of its entrypoints (up to
    /// `max_routes` in all); its status for the API.
    fn place_router(
        &mut self,
        ctx: &AssembleCtx,
        default_eps: &[String],
        name: &str,
        ns: &str,
        r: &schema::Router,
        placed: &mut Placed,
    ) -> RouterStatus {
        let eps = if r.entry_points.is_empty() {
            default_eps
        } else {
            &r.entry_points[..]
        };
        let service_name = qualify(&r.service, ns);
        let mut status = RouterStatus {
            priority: 0,
            error: None,
        };
        let built = match self.router(ns, r, &service_name) {
            Ok(built) => built,
            Err(why) => {
                self.problems
                    .push(Problem::new(format!("router {name}"), why.clone()));
                status.error = Some(why.into());
                return status;
            }
        };
        let priority = (r.priority)
            .filter(|&p| p != 0)
            .unwrap_or_else(|| rule::default_priority(&r.rule));
        status.priority = priority;
        let (service, gate) = ctx.admin.apply(ns, &built.service);
        placed.hosts.extend(built.rule.mentioned_hosts());
        let rule_ = Arc::new(built.rule);
        let mut served = false;
        for ep in eps {
            let Some(mut chain) = self.entrypoint_chain(ctx, name, ep) else {
                continue;
            };
            let ep_tls = ctx.entrypoints.iter().find(|e| e.name == *ep);
            let tls = super::tls::router_tls(r, ep_tls.and_then(|e| e.tls.as_ref()), ns);
            if placed.routes >= ctx.max_routes {
                let why = format!(
                    "route limit of {} reached (limits.max_routes)",
                    ctx.max_routes
                );
                self.problems
                    .push(Problem::new(format!("router {name}"), why));
                break;
            }
            placed.routes += 1;
            chain.extend(built.middlewares.iter().cloned());
            chain.extend(gate.iter().cloned());
            let per_ep = match &tls {
                Some(tls) => {
                    (placed.tls_hosts).add((name, ep), &rule_, tls, ctx, &mut self.problems);
                    &mut placed.per_ep_tls
                }
                None => &mut placed.per_ep,
            };
            per_ep.entry(ep.clone()).or_default().push(Arc::new(Route {
                name: name.to_string(),
                rule: Arc::clone(&rule_),
                priority,
                service_name: service_name.clone(),
                service: Arc::clone(&service),
                middlewares: chain,
            }));
            served = true;
        }
        if !served {
            status.error = Some("not attached to any entrypoint".into());
        }
        status
    }

    /// The middlewares entrypoint `ep` puts before every router's own; `None` (with a problem
    /// recorded) when the entrypoint does not exist or one of them cannot be built.
    fn entrypoint_chain(
        &mut self,
        ctx: &AssembleCtx,
        router: &str,
        ep: &str,
    ) -> Option<Vec<Arc<Middleware>>> {
        let Some(spec) = ctx.entrypoints.iter().find(|e| e.name == ep) else {
            self.problems.push(Problem::new(
                format!("router {router}"),
                format!("entrypoint `{ep}` does not exist"),
            ));
            return None;
        };
        let mut chain = Vec::new();
        let mut ok = true;
        for m in &spec.middlewares {
            match self.middleware(&qualify(m, "file"), &mut Vec::new()) {
                Ok(ms) => chain.extend(ms),
                Err(why) => {
                    self.problems.push(Problem::new(
                        format!("entrypoint {ep}"),
                        format!("middleware {m}: {why}"),
                    ));
                    ok = false;
                }
            }
        }
        ok.then_some(chain)
    }

    /// Compile one router: its rule, its service and its own middlewares.
    fn router(
        &mut self,
        ns: &str,
        r: &schema::Router,
        service_name: &str,
    ) -> Result<BuiltRouter, String> {
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
        let Some(&(ns, key, cfg)) = self.service_cfgs.get(name) else {
            let internal = Internal::from_name(name).ok_or("does not exist")?;
            let built = Ok(Arc::new(Service::Internal(internal)));
            self.services.insert(name.to_string(), built.clone());
            return built;
        };
        stack.push(name.to_string());
        let built = self.build_service(name, (ns, key, cfg), stack);
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
        (ns, key, cfg): Src<'a, schema::Service>,
        stack: &mut Vec<String>,
    ) -> Result<Arc<Service>, String> {
        let prev = self.prev.and_then(|p| {
            let was = p.configs.get(ns)?.http.as_ref()?.services.get(key)?;
            (was == cfg).then(|| p.services.get(name)).flatten()
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
        let Some(&(ns, key, cfg)) = self.mw_cfgs.get(name) else {
            return Err("does not exist".into());
        };
        stack.push(name.to_string());
        let built = match self.reuse_middleware(name, (ns, key, cfg)) {
            Some(same) => self.errors_service(&same).map(|()| {
                (self.compiled_mws).insert(name.to_string(), Arc::clone(&same));
                vec![same]
            }),
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
        (ns, key, cfg): Src<'a, middlewares::MiddlewareConfig>,
    ) -> Option<Arc<Middleware>> {
        let prev = self.prev?;
        if cfg.chain.is_some() {
            return None;
        }
        let was = prev.configs.get(ns)?.http.as_ref()?.middlewares.get(key)?;
        (was == cfg)
            .then(|| prev.middlewares.get(name).cloned())
            .flatten()
    }

    /// An `errors` middleware's page service must exist (a missing one fails its routers, as
    /// in Traefik); it is looked up by name when a page is fetched.
    fn errors_service(&mut self, m: &Middleware) -> Result<(), String> {
        let Some((errors, _)) = m.errors() else {
            return Ok(());
        };
        let name = errors.service().to_string();
        self.service(&name, &mut Vec::new())
            .map(drop)
            .map_err(|why| format!("errors service {name}: {why}"))
    }

    fn compile_middleware(
        &mut self,
        name: &str,
        ns: &str,
        cfg: &middlewares::MiddlewareConfig,
        stack: &mut Vec<String>,
    ) -> Result<Vec<Arc<Middleware>>, String> {
        match middlewares::compile_with(cfg, self.bounds) {
            Ok(Compiled::One(mut m)) => {
                if let Some(page_service) = m.errors_service_mut() {
                    *page_service = qualify(page_service, ns);
                }
                self.errors_service(&m)?;
                let m = Arc::new(m);
                (self.compiled_mws).insert(name.to_string(), Arc::clone(&m));
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
