//! The per-entrypoint route table: compiled routes in Traefik's precedence order, with a host
//! index in front so a request only tests the rules that can match its host.
//!
//! Built once by `assemble`, read-only afterwards. Lookup must stay allocation-free: a hash
//! lookup on the canonical host, then a merge of two already sorted index lists.

use std::collections::HashMap;
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
    /// Canonical host → indices into `routes`, ascending (so already in precedence order).
    by_host: HashMap<String, Vec<u32>>,
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
        let mut by_host: HashMap<String, Vec<u32>> = HashMap::new();
        let mut any_host = Vec::new();
        for (i, route) in routes.iter().enumerate() {
            let i = i as u32;
            match route.rule.host_keys() {
                Some(hosts) => {
                    for h in hosts {
                        let list = by_host.entry(h).or_default();
                        if list.last() != Some(&i) {
                            list.push(i);
                        }
                    }
                }
                None => any_host.push(i),
            }
        }
        RouteTable {
            routes,
            by_host,
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
        let hosted: &[u32] = self.by_host.get(req.host).map_or(&[], |v| v.as_slice());
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
