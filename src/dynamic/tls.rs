//! TLS while assembling: which routes are served over TLS (the router's own `tls`, else its
//! entrypoint's `http.tls`), which option set each of their hosts gets, and the compiled setup
//! of every provider's `[tls]` (`runtime::tls`), reused while nothing it read has changed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::{AssembleCtx, Fragment, Problem, Snapshot, qualify, schema};
use crate::rule::Rule;
use crate::runtime::tls::{DEFAULT_OPTIONS, Resolvers, TlsInput, TlsSetup};

/// What a TLS route asks for.
pub(super) struct RouteTls {
    /// Qualified option set name (`default` stays unqualified).
    options: String,
    cert_resolver: Option<String>,
}

/// The TLS settings of router `r` (of provider `ns`) on an entrypoint whose `http.tls` is `ep`;
/// `None`: served over plain HTTP there.
pub(super) fn router_tls(
    r: &schema::Router,
    ep: Option<&crate::config::EntryPointTls>,
    ns: &str,
) -> Option<RouteTls> {
    // As Traefik: the entry point's TLS applies to a router only when it has none of its own
    // (a router's `tls` table is taken whole, never merged field by field).
    let (options, cert_resolver) = match (&r.tls, ep) {
        (Some(t), _) => (t.options.clone(), t.cert_resolver.clone()),
        (None, Some(e)) => (e.options.clone(), e.cert_resolver.clone()),
        (None, None) => return None,
    };
    let options = match options.as_deref() {
        None | Some("") | Some(DEFAULT_OPTIONS) => DEFAULT_OPTIONS.to_string(),
        Some(name) if name.strip_suffix("@internal") == Some(DEFAULT_OPTIONS) => {
            DEFAULT_OPTIONS.to_string()
        }
        Some(name) => qualify(name, ns),
    };
    Some(RouteTls {
        options,
        cert_resolver: cert_resolver.filter(|c| !c.is_empty()),
    })
}

/// The option set of each TLS router's host, as the routers are placed.
#[derive(Default)]
pub(super) struct HostOptions {
    /// (entrypoint, host) → option set: Traefik keeps one map per entry point.
    map: BTreeMap<(String, String), String>,
    conflicted: BTreeSet<(String, String)>,
    /// Host → the local CA (by resolver name) that issues its certificate.
    resolvers: BTreeMap<String, String>,
}

impl HostOptions {
    /// Router `router` with `rule` is served over TLS on `ep` with `tls`.
    pub(super) fn add(
        &mut self,
        (router, ep): (&str, &str),
        rule: &Rule,
        tls: &RouteTls,
        ctx: &AssembleCtx,
        problems: &mut Vec<Problem>,
    ) {
        if let Some(name) = &tls.cert_resolver {
            self.resolver(router, name, rule, ctx, problems);
        }
        let asks = tls.options != DEFAULT_OPTIONS || tls.cert_resolver.is_some();
        if asks && rule.mentioned_hosts().is_empty() {
            problems.push(Problem::new(
                format!("router {router}"),
                "its rule names no host (Host(`name`)), so its TLS options and certResolver \
                 apply to no handshake: they are chosen by the client's server name",
            ));
        }
        for host in rule.mentioned_hosts() {
            let key = (ep.to_string(), host);
            if self.conflicted.contains(&key) {
                continue;
            }
            match self.map.get(&key) {
                Some(existing) if *existing != tls.options => {
                    problems.push(Problem::new(
                        format!("host {} on entry point {ep}", key.1),
                        format!(
                            "routers ask for different TLS options (`{existing}` and `{}`); \
                             the default ones are used",
                            tls.options
                        ),
                    ));
                    self.map.insert(key.clone(), DEFAULT_OPTIONS.to_string());
                    self.conflicted.insert(key);
                }
                Some(_) => {}
                None => {
                    self.map.insert(key, tls.options.clone());
                }
            }
        }
    }

    /// Router `router` names resolver `name` for the hosts of `rule`.
    fn resolver(
        &mut self,
        router: &str,
        name: &str,
        rule: &Rule,
        ctx: &AssembleCtx,
        problems: &mut Vec<Problem>,
    ) {
        let problem = |why: String| Problem::new(format!("router {router}"), why);
        let ca = match ctx.resolvers.get(name) {
            Some(Ok(ca)) => ca,
            Some(Err(why)) => {
                problems.push(problem(format!(
                    "certResolver `{name}` is unavailable ({why}); the default certificate \
                     is served"
                )));
                return;
            }
            None => {
                problems.push(problem(format!(
                    "certResolver `{name}` does not exist ([certificatesResolvers] has no such \
                     name; boma has no ACME resolver yet); the default certificate is served"
                )));
                return;
            }
        };
        for host in rule.mentioned_hosts() {
            if !ca.covers(&host) {
                problems.push(problem(format!(
                    "{host} is outside the domains of certResolver `{name}`; no certificate is \
                     issued for it"
                )));
                continue;
            }
            self.resolvers
                .entry(host)
                .or_insert_with(|| name.to_string());
        }
    }
}

/// The TLS setup of `fragments` with the TLS routers' `hosts`; its faults become problems.
pub(super) fn setup(
    fragments: &BTreeMap<String, Fragment>,
    hosts: HostOptions,
    ctx: &AssembleCtx,
    prev: Option<&Snapshot>,
    problems: &mut Vec<Problem>,
) -> Arc<TlsSetup> {
    let input = TlsInput {
        sections: (fragments.iter())
            .filter_map(|(ns, f)| Some((ns.clone(), f.config.tls.clone()?)))
            .collect(),
        host_options: hosts.map,
        host_resolvers: hosts.resolvers,
    };
    let opened: Resolvers = (ctx.resolvers.iter())
        .filter_map(|(name, r)| Some((name.clone(), Arc::clone(r.as_ref().ok()?))))
        .collect();
    let setup = TlsSetup::compile(input, &opened, prev.map(|p| &p.tls));
    problems
        .extend((setup.problems.iter()).map(|(what, why)| Problem::new(what.clone(), why.clone())));
    setup
}
