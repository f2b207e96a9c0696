//! The per-entrypoint route table: compiled routes in Traefik's precedence order, with a host
//! index in front so a request only tests the rules that can match its host.
//!
//! Built once by `assemble`, read-only afterwards. Lookup must stay allocation-free: a hash
//! lookup on the canonical host, then a merge of two already sorted index lists.

use std::sync::Arc;

use crate::rule::{self, Rule};
use crate::runtime::balance::Service;
use crate::runtime::middlewares::Middleware;

/// A router compiled for one entrypoint.
#[derive(Debug)]
pub struct Route {
    /// Qualified router name (`name@provider`).
    pub name: String,
    pub rule: Arc<Rule>,
    pub priority: i64,
    /// Qualified service name, for logs.
    pub service_name: String,
    pub service: Arc<Service>,
    /// Entrypoint middlewares first, then the router's, chains expanded.
    pub middlewares: Vec<Arc<Middleware>>,
}

/// Routes of one entrypoint.
#[derive(Debug, Default)]
pub struct RouteTable {
    /// Sorted by precedence: priority descending, then name ascending (stable and predictable).
    routes: Vec<Arc<Route>>,
    /// Canonical host → its range of `hosted`.
    by_host: fnv::FnvHashMap<Box<str>, (u32, u32)>,
    /// Indices into `routes` of every indexed host, one ascending run (so already in precedence
    /// order) per host: one flat list rather than a list per host.
    hosted: Vec<u32>,
    /// Indices of routes that may match any host, ascending.
    any_host: Vec<u32>,
}

impl RouteTable {
    pub fn new(mut routes: Vec<Arc<Route>>) -> Self {
        routes.sort_by(|a, b| {
            b.priority
                .cmp(&a.priority)
                .then_with(|| a.name.cmp(&b.name))
        });
        let mut pairs: Vec<(String, u32)> = Vec::new();
        let mut any_host = Vec::new();
        for (i, route) in routes.iter().enumerate() {
            let i = i as u32;
            match route.rule.host_keys() {
                Some(hosts) => pairs.extend(hosts.into_iter().map(|h| (h, i))),
                None => any_host.push(i),
            }
        }
        pairs.sort_unstable();
        pairs.dedup();
        let mut by_host = fnv::FnvHashMap::default();
        let mut hosted = Vec::with_capacity(pairs.len());
        let mut pairs = pairs.into_iter().peekable();
        while let Some((host, i)) = pairs.next() {
            let start = hosted.len() as u32;
            hosted.push(i);
            while let Some((_, j)) = pairs.next_if(|(h, _)| *h == host) {
                hosted.push(j);
            }
            by_host.insert(host.into_boxed_str(), (start, hosted.len() as u32));
        }
        RouteTable {
            routes,
            by_host,
            hosted,
            any_host,
        }
    }

    pub fn routes(&self) -> &[Arc<Route>] {
        &self.routes
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The highest-precedence route whose rule matches.
    pub fn find(&self, req: &rule::Request<'_>) -> Option<&Arc<Route>> {
        let hosted: &[u32] = self.by_host.get(req.host).map_or(&[], |&(start, end)| {
            &self.hosted[start as usize..end as usize]
        });
        let (mut a, mut b) = (0, 0);
        loop {
            let next = match (hosted.get(a), self.any_host.get(b)) {
                (Some(&x), Some(&y)) if x < y => {
                    a += 1;
                    x
                }
                (_, Some(&y)) => {
                    b += 1;
                    y
                }
                (Some(&x), None) => {
                    a += 1;
                    x
                }
                (None, None) => return None,
            };
            let route = &self.routes[next as usize];
            if route.rule.matches(req) {
                return Some(route);
            }
        }
    }
}
