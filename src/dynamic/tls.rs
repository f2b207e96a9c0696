//! TLS while assembling: which routes are served over TLS (the router's own `tls`, else its
//! entrypoint's `http.tls`), which option set each of their hosts gets, and the compiled setup
//! of every provider's `[tls]` (`runtime::tls`), reused while nothing it read has changed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::{Fragment, Problem, Snapshot, qualify, schema};
use crate::rule::Rule;
use crate::runtime::tls::{DEFAULT_OPTIONS, TlsInput, TlsSetup};

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
    let (options, cert_resolver) = match (&r.tls, ep) {
        (Some(t), ep) => (
            t.options
                .clone()
                .or_else(|| ep.and_then(|e| e.options.clone())),
            (t.cert_resolver.clone()).or_else(|| ep.and_then(|e| e.cert_resolver.clone())),
        ),
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
    map: BTreeMap<String, String>,
    conflicted: BTreeSet<String>,
}

impl HostOptions {
    /// Router `router` with `rule` is served over TLS with `tls`.
    pub(super) fn add(
        &mut self,
        router: &str,
        rule: &Rule,
        tls: &RouteTls,
        problems: &mut Vec<Problem>,
    ) {
        if let Some(resolver) = &tls.cert_resolver {
            problems.push(Problem::new(
                format!("router {router}"),
                format!(
                    "certResolver `{resolver}` does not exist (boma has no ACME resolver yet); \
                     certificates come from [tls] and the default certificate"
                ),
            ));
        }
        for host in rule.mentioned_hosts() {
            if self.conflicted.contains(&host) {
                continue;
            }
            match self.map.get(&host) {
                Some(existing) if *existing != tls.options => {
                    problems.push(Problem::new(
                        format!("host {host}"),
                        format!(
                            "routers ask for different TLS options (`{existing}` and `{}`); \
                             the default ones are used",
                            tls.options
                        ),
                    ));
                    self.map.insert(host.clone(), DEFAULT_OPTIONS.to_string());
                    self.conflicted.insert(host);
                }
                Some(_) => {}
                None => {
                    self.map.insert(host, tls.options.clone());
                }
            }
        }
    }
}

/// The TLS setup of `fragments` with the TLS routers' `hosts`; its faults become problems.
pub(super) fn setup(
    fragments: &BTreeMap<String, Fragment>,
    hosts: HostOptions,
    prev: Option<&Snapshot>,
    problems: &mut Vec<Problem>,
) -> Arc<TlsSetup> {
    let input = TlsInput {
        sections: (fragments.iter())
            .filter_map(|(ns, f)| Some((ns.clone(), f.config.tls.clone()?)))
            .collect(),
        host_options: hosts.map,
    };
    let setup = TlsSetup::compile(input, prev.map(|p| &p.tls));
    problems
        .extend((setup.problems.iter()).map(|(what, why)| Problem::new(what.clone(), why.clone())));
    setup
}
