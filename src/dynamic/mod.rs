//! The dynamic model every part reads: providers send whole [`Fragment`]s (one per provider
//! namespace), [`assemble`] turns all current fragments into one [`Snapshot`], and the [`Store`]
//! publishes it to consumers (an ArcSwap load for the proxy, a watch channel for tasks that react
//! to changes). A snapshot is swapped whole and never changed; its configuration data is plain,
//! and the live state it points to (servers' health, rate-limit buckets, the basicAuth cache:
//! `runtime`) is shared by `Arc` with the previous snapshot while its part is unchanged.
//!
//! The only I/O is in [`run`] (logging) and in compiling a basicAuth `usersFile` (read when that
//! middleware's configuration changes); a bad fragment never stops a snapshot from being built:
//! its faults become [`Problem`]s and the rest keeps serving.

mod assemble;
pub mod run;
pub mod schema;
mod services;
pub mod table;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_schema;
mod tls;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use arc_swap::ArcSwap;
use serde::Serialize;
use tokio::sync::watch;

pub use assemble::{AdminGate, AssembleCtx, EntryPointSpec, assemble};

use crate::runtime::balance::Service;
use crate::runtime::middlewares::Middleware;
use table::RouteTable;

/// `name` qualified by its provider's namespace `ns` (`x` → `x@ns`), unless it already names
/// one (`x@other` stays).
pub fn qualify(name: &str, ns: &str) -> String {
    if name.contains('@') {
        name.to_string()
    } else {
        format!("{name}@{ns}")
    }
}

/// What one provider currently says, whole.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fragment {
    /// Shared, not copied, between the provider that keeps it for comparison and the assembler
    /// (a thousand routers are megabytes of configuration).
    pub config: Arc<schema::DynamicConfig>,
    /// Faults the provider found itself (a file that does not parse, a bad label...).
    pub problems: Vec<Problem>,
    /// DHCP leases (the dhcp provider): their names join the local zone.
    pub leases: Vec<Lease>,
}

/// One DHCP lease as the rest of boma sees it: the API lists it, DNS publishes its name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Lease {
    pub address: std::net::Ipv4Addr,
    pub mac: String,
    /// The client's host label; empty when it gave none.
    pub hostname: String,
    /// Unix seconds.
    pub expires: u64,
}

/// A fault in the configuration, shown on the dashboard and logged once.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Problem {
    /// What it is about: `router web@file`, `file /etc/boma/dynamic.toml`, ...
    pub source: String,
    pub message: String,
}

impl Problem {
    pub fn new(source: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            source: source.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.source, self.message)
    }
}

/// What assembling decided about one router. The API shows it beside the router's own
/// configuration ([`Snapshot::router_config`]), which is not copied here: a thousand routers
/// would hold their rules, services and entry points twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterStatus {
    pub priority: i64,
    /// Why the router serves nothing; `None` when it is enabled.
    pub error: Option<Box<str>>,
}

impl RouterStatus {
    /// `enabled`, or `disabled` (with the reason in `error`).
    pub fn status(&self) -> &'static str {
        if self.error.is_none() {
            "enabled"
        } else {
            "disabled"
        }
    }
}

/// One consistent view of the dynamic configuration, swapped whole.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub generation: u64,
    /// Route tables by entrypoint name: the routes served over plain HTTP...
    pub tables: HashMap<String, RouteTable>,
    /// ... and those served over TLS (`tls` on the router or `http.tls` on the entrypoint).
    pub tls_tables: HashMap<String, RouteTable>,
    /// Certificates and option sets of the TLS entrypoints (shared with the previous snapshot
    /// while unchanged).
    pub tls: Arc<crate::runtime::tls::TlsSetup>,
    /// Every built service by qualified name.
    pub services: BTreeMap<String, Arc<Service>>,
    /// Every compiled single middleware by qualified name (for reuse on the next assemble).
    pub(crate) middlewares: BTreeMap<String, Arc<Middleware>>,
    /// The configuration of each provider namespace it was built from, shared with the
    /// fragments: what the next assemble compares against to reuse services and middlewares.
    pub(crate) configs: BTreeMap<String, Arc<schema::DynamicConfig>>,
    pub routers: BTreeMap<String, RouterStatus>,
    /// The entry points of routers that name none.
    pub default_entrypoints: Vec<String>,
    pub problems: Vec<Problem>,
    /// Host names that routers answer for (from non-negated `Host` matchers), for DNS.
    pub hosts: BTreeSet<String>,
    /// Every provider's DHCP leases, in address order (shared with the previous snapshot when
    /// unchanged).
    pub leases: Arc<Vec<Lease>>,
}

impl Snapshot {
    /// The routes of `entrypoint` for a plain or a TLS connection.
    pub fn table(&self, entrypoint: &str, tls: bool) -> Option<&RouteTable> {
        if tls {
            self.tls_tables.get(entrypoint)
        } else {
            self.tables.get(entrypoint)
        }
    }

    /// The configuration of router `qualified` (`name@provider`) as its provider gave it.
    pub fn router_config(&self, qualified: &str) -> Option<&schema::Router> {
        let (name, ns) = qualified.rsplit_once('@')?;
        self.configs.get(ns)?.http.as_ref()?.routers.get(name)
    }
}

/// Where the current snapshot lives: an `ArcSwap` for per-request reads and a watch channel for
/// tasks that react to a new snapshot.
#[derive(Clone)]
pub struct Store {
    pub current: Arc<ArcSwap<Snapshot>>,
    tx: Arc<watch::Sender<Arc<Snapshot>>>,
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

impl Store {
    pub fn new() -> Self {
        let empty = Arc::new(Snapshot::default());
        let (tx, _) = watch::channel(Arc::clone(&empty));
        Store {
            current: Arc::new(ArcSwap::new(empty)),
            tx: Arc::new(tx),
        }
    }

    pub fn load(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    pub fn publish(&self, snapshot: Arc<Snapshot>) {
        self.current.store(Arc::clone(&snapshot));
        self.tx.send_replace(snapshot);
    }

    pub fn subscribe(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.tx.subscribe()
    }
}
