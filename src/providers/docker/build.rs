//! Every container of one engine → one [`Fragment`], merged as Traefik's `provider.Merge` does:
//! containers are taken in `<service>-<id>` order; a service defined by several containers is
//! one load balancer with each container's server (that is how `docker compose up --scale` and
//! `server.weight` canaries work) as long as their load-balancer settings are equal; a router or
//! middleware defined by several containers must be defined identically. A name defined
//! differently is left out and reported, naming the containers.
//!
//! Pure: the same containers and settings always give the same fragment.

use std::collections::{BTreeMap, BTreeSet};

use super::decode::{Decoded, decode};
use super::{Container, Settings};
use crate::dynamic::schema::{DynamicConfig, Http, Service};
use crate::dynamic::{Fragment, Problem};

/// Most containers turned into configuration per engine; more are reported and ignored.
pub const MAX_CONTAINERS: usize = 4096;

/// The fragment for every container of one engine (`containers` by ID).
pub fn build(containers: &BTreeMap<String, Container>, s: &Settings) -> Fragment {
    let mut decoded: Vec<Decoded> = containers
        .values()
        .take(MAX_CONTAINERS)
        .filter_map(|c| decode(c, containers, s))
        .collect();
    decoded.sort_by(|a, b| a.key.cmp(&b.key));
    let mut problems: Vec<Problem> = Vec::new();
    if containers.len() > MAX_CONTAINERS {
        problems.push(Problem::new(
            format!("provider {}", s.namespace),
            format!("more than {MAX_CONTAINERS} containers; the rest are ignored"),
        ));
    }

    let mut merged = Merged::default();
    for d in &decoded {
        problems.extend(d.problems.iter().cloned());
        merged.add(d);
    }
    let http = merged.finish(&s.namespace, &mut problems);
    problems.sort();
    problems.dedup();
    let empty = http.routers.is_empty() && http.services.is_empty() && http.middlewares.is_empty();
    Fragment {
        config: std::sync::Arc::new(DynamicConfig {
            http: (!empty).then_some(http),
            ..DynamicConfig::default()
        }),
        problems,
        leases: Vec::new(),
    }
}

/// The containers' configuration merged so far: what each name came from, and the names
/// defined differently by two containers.
#[derive(Default)]
struct Merged {
    http: Http,
    origins: BTreeMap<(&'static str, String), Vec<String>>,
    conflicts: BTreeSet<(&'static str, String)>,
}

impl Merged {
    /// One container's services, routers and middlewares.
    fn add(&mut self, d: &Decoded) {
        for (name, svc) in &d.http.services {
            self.seen("service", name, &d.origin);
            match self.http.services.get_mut(name) {
                None => {
                    self.http.services.insert(name.clone(), svc.clone());
                }
                Some(existing) => {
                    if !merge_service(existing, svc) {
                        self.conflicts.insert(("service", name.clone()));
                    }
                }
            }
        }
        for (name, r) in &d.http.routers {
            self.seen("router", name, &d.origin);
            if !insert_same(&mut self.http.routers, name, r) {
                self.conflicts.insert(("router", name.clone()));
            }
        }
        for (name, m) in &d.http.middlewares {
            self.seen("middleware", name, &d.origin);
            if !insert_same(&mut self.http.middlewares, name, m) {
                self.conflicts.insert(("middleware", name.clone()));
            }
        }
    }

    fn seen(&mut self, kind: &'static str, name: &str, origin: &str) {
        (self.origins.entry((kind, name.to_string())).or_default()).push(origin.to_string());
    }

    /// The merged configuration without the conflicting names, each reported with the
    /// containers that defined it.
    fn finish(mut self, namespace: &str, problems: &mut Vec<Problem>) -> Http {
        for (kind, name) in &self.conflicts {
            match *kind {
                "service" => {
                    self.http.services.remove(name);
                }
                "router" => {
                    self.http.routers.remove(name);
                }
                _ => {
                    self.http.middlewares.remove(name);
                }
            }
            let by = (self.origins.get(&(*kind, name.clone())))
                .map(|v| v.join(", "))
                .unwrap_or_default();
            problems.push(Problem::new(
                format!("{kind} {name}@{namespace}"),
                format!("defined with different settings by containers {by}; left out"),
            ));
        }
        self.http
    }
}

/// Put `value` under `name` unless it is there already; false when what is there differs.
fn insert_same<T: Clone + PartialEq>(map: &mut BTreeMap<String, T>, name: &str, value: &T) -> bool {
    match map.get(name) {
        None => {
            map.insert(name.to_string(), value.clone());
            true
        }
        Some(existing) => existing == value,
    }
}

/// Add `add`'s servers to `into` when both are load balancers with equal settings (servers
/// aside; a URL already present is not added twice), or accept an identical service. False
/// means a conflict.
fn merge_service(into: &mut Service, add: &Service) -> bool {
    match (into, add) {
        (Service::LoadBalancer(a), Service::LoadBalancer(b)) => {
            let mut a_rest = (**a).clone();
            let mut b_rest = (**b).clone();
            a_rest.servers.clear();
            b_rest.servers.clear();
            if a_rest != b_rest {
                return false;
            }
            for srv in &b.servers {
                if !a.servers.iter().any(|s| s.url == srv.url) {
                    a.servers.push(srv.clone());
                }
            }
            true
        }
        (a, b) => a == b,
    }
}
