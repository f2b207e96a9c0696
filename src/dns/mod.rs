//! boma's DNS server: the local zone (the `[dns]` zone, router Host names from the snapshot,
//! static hosts, DHCP names) answered authoritatively, everything else forwarded to upstream
//! servers through a bounded cache, with dnsmasq's safety rules (domain-needed, bogus-priv,
//! rebind protection) and serve-stale for offline uplinks.
//!
//! Parts: `wire` (hickory-proto at the edge), `zone` (the immutable local zone), `leases` (the
//! snapshot's DHCP leases as names), `cache`, `upstream` (asking servers), `filter` (dnsmasq's ranges),
//! `handler` (the query path, phases written down there), `server` (sockets and loops),
//! `querylog`. [`start`] wires them on the caller's runtime; the zone task rebuilds the zone when
//! a new snapshot or new lease names arrive and swaps it whole, so queries never wait for an
//! update and never take a lock to read the zone.
//!
//! The wire format is hickory-proto's. hickory-server's `Server` is not used: it spawns a task
//! per UDP packet and per TCP connection without a bound, drops or FORMERRs malformed packets
//! before a handler can count them, and adds a task hop and boxed futures per query; the loops
//! here are bounded, count what they drop, answer local names and cache hits without spawning,
//! and are smaller. Nothing here reads the network at start-up: upstreams are asked only for a
//! client's question.

mod cache;
mod filter;
mod handler;
mod leases;
mod querylog;
mod server;
mod upstream;
mod wire;
mod zone;

#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hickory_proto::rr::Name;
use tokio::sync::watch;
use tokio::task::JoinSet;

pub use handler::{Resolver, Stats};
pub use leases::LeaseName;
pub use zone::{LocalZone, ZoneSpec};

use crate::config;
use crate::dynamic::Store;

/// Why the DNS server could not start.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("dns: cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("dns: {0}")]
    Config(String),
}

/// A started DNS server: where it listens and its query path (for counters).
pub struct Started {
    pub addrs: Vec<SocketAddr>,
    pub resolver: Arc<Resolver>,
}

/// The zone's configured part.
pub fn zone_spec(cfg: &config::Dns) -> Result<ZoneSpec, DnsError> {
    let origin = zone::fqdn(&cfg.zone)
        .ok_or_else(|| DnsError::Config(format!("`{}` is not a domain name", cfg.zone)))?;
    let ttl = u32::try_from(cfg.local_ttl.to_std().as_secs()).unwrap_or(u32::MAX);
    Ok(ZoneSpec {
        origin,
        addrs: cfg.answer_addresses(),
        ttl,
        wildcard: cfg.wildcard,
        hosts: cfg
            .hosts
            .iter()
            .map(|(n, ips)| (n.clone(), ips.clone()))
            .collect(),
    })
}

/// Where the host's resolvers are listed when `upstreams` is not configured.
const RESOLV_CONF: &str = "/etc/resolv.conf";
/// How often resolv.conf is looked at again (a DHCP WAN writes it after boma started).
const RESOLV_CONF_POLL: Duration = Duration::from_secs(2);

/// The upstreams: the configured ones, or the host's resolv.conf nameservers (nothing is asked
/// until a client asks).
fn upstream_addrs(cfg: &config::Dns) -> Vec<SocketAddr> {
    match cfg.upstream_addrs() {
        Some(list) => list,
        None => match std::fs::read_to_string(RESOLV_CONF) {
            Ok(text) => upstream::from_resolv_conf(&text, &cfg.listen),
            Err(e) => {
                tracing::warn!(error = %e, "dns: cannot read {RESOLV_CONF}; not forwarding until it appears");
                Vec::new()
            }
        },
    }
}

/// Without configured `upstreams`: follow resolv.conf (the WAN's DHCP client rewrites it) and
/// swap the upstreams when its nameservers change.
async fn follow_resolv_conf(
    cfg: config::Dns,
    mut current: Vec<SocketAddr>,
    resolver: Arc<Resolver>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(RESOLV_CONF_POLL) => {}
            _ = stop.changed() => return,
        }
        let Ok(text) = tokio::fs::read_to_string(RESOLV_CONF).await else {
            continue;
        };
        let found = upstream::from_resolv_conf(&text, &cfg.listen);
        if found != current {
            tracing::info!(upstreams = ?found, "dns: the host's resolvers changed");
            let timeout = cfg.upstream_timeout.to_std();
            resolver.set_upstreams(upstream::Upstreams::new(&found, cfg.strict_order, timeout));
            current = found;
        }
    }
}

fn serial_base() -> u32 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_secs());
    u32::try_from(secs).unwrap_or(1)
}

/// Bind every `[dns]` listen address and start the server's tasks in `tasks` (on the caller's
/// runtime); they stop on `stop`.
/// [`start`] on a thread of its own with a single-threaded runtime, so no work elsewhere (an
/// assemble after a storm of container events, a provider, a health check) delays an answer.
/// Returns once the sockets are bound; the thread ends when `stop` flips and every DNS task is
/// done.
pub fn spawn(
    cfg: &config::Dns,
    store: &Store,
    stop: &watch::Receiver<bool>,
) -> Result<(Started, std::thread::JoinHandle<()>), DnsError> {
    let (cfg, store, stop) = (cfg.clone(), store.clone(), stop.clone());
    let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
    let thread = std::thread::Builder::new()
        .name("boma-dns".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(DnsError::Config(format!("runtime: {e}"))));
                    return;
                }
            };
            runtime.block_on(async move {
                let mut tasks = JoinSet::new();
                let started = start(&cfg, &store, &stop, &mut tasks);
                let ok = started.is_ok();
                let _ = ready_tx.send(started);
                if ok {
                    while tasks.join_next().await.is_some() {}
                }
            });
        })
        .map_err(|e| DnsError::Config(format!("cannot start the DNS thread: {e}")))?;
    match ready_rx.recv() {
        Ok(Ok(started)) => Ok((started, thread)),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e)
        }
        Err(_) => {
            let _ = thread.join();
            Err(DnsError::Config("the DNS thread ended at start".into()))
        }
    }
}

/// Bind and start the DNS server's tasks on the current runtime.
pub fn start(
    cfg: &config::Dns,
    store: &Store,
    stop: &watch::Receiver<bool>,
    tasks: &mut JoinSet<()>,
) -> Result<Started, DnsError> {
    let spec = zone_spec(cfg)?;
    let policy = policy(cfg)?;
    let bound = server::bind(&cfg.listen)?;

    let upstreams = upstream_addrs(cfg);
    tracing::info!(zone = %spec.origin, upstreams = ?upstreams, "dns: starting");
    let log = cfg.query_log.then(|| {
        let (log, writer) = querylog::QueryLog::new(cfg.query_log_file.clone(), stop.clone());
        tasks.spawn(writer);
        log
    });
    let stale = handler::stale_window(cfg.serve_stale, cfg.max_stale.to_std());
    let serial = serial_base();
    let snapshot = store.load();
    let resolver = Arc::new(Resolver::new(
        LocalZone::build(
            &spec,
            &snapshot.hosts,
            &LeaseName::of(&snapshot.leases),
            serial,
        ),
        cache::Cache::new(cfg.cache_size, stale),
        cfg.cache_size,
        upstream::Upstreams::new(&upstreams, cfg.strict_order, cfg.upstream_timeout.to_std()),
        policy,
        cfg.max_in_flight,
        log,
    ));
    if cfg.upstreams.is_none() {
        tasks.spawn(follow_resolv_conf(
            cfg.clone(),
            upstreams,
            Arc::clone(&resolver),
            stop.clone(),
        ));
    }
    tasks.spawn(zone_task(
        spec,
        (store.subscribe(), snapshot),
        Arc::clone(&resolver),
        serial,
        stop.clone(),
    ));

    let addrs = serve_bound(bound, &resolver, cfg, stop, tasks)?;
    Ok(Started { addrs, resolver })
}

/// Who may ask and what is answered without asking upstream, from `[dns]`.
fn policy(cfg: &config::Dns) -> Result<handler::Policy, DnsError> {
    let allowed = crate::ipnet::IpSet::parse(&cfg.allowed_cidrs())
        .map_err(|e| DnsError::Config(format!("allowed_networks: {e}")))?;
    Ok(handler::Policy {
        allowed,
        local: cfg.local_service(),
        auto_address: cfg.auto_address(),
        domain_needed: cfg.domain_needed,
        bogus_priv: cfg.bogus_priv,
        rebind_protection: cfg.rebind_protection,
        rebind_allow: (cfg.rebind_allow.iter())
            .filter_map(|d| zone::fqdn(d))
            .collect(),
        serve_stale: cfg.serve_stale,
    })
}

/// A UDP and a TCP server task for each bound address; the addresses.
fn serve_bound(
    bound: Vec<server::Bound>,
    resolver: &Arc<Resolver>,
    cfg: &config::Dns,
    stop: &watch::Receiver<bool>,
    tasks: &mut JoinSet<()>,
) -> Result<Vec<SocketAddr>, DnsError> {
    let mut addrs = Vec::new();
    for b in bound {
        let udp = tokio::net::UdpSocket::from_std(b.udp).map_err(|source| DnsError::Bind {
            addr: b.addr,
            source,
        })?;
        let tcp = tokio::net::TcpListener::from_std(b.tcp).map_err(|source| DnsError::Bind {
            addr: b.addr,
            source,
        })?;
        tasks.spawn(server::serve_udp(udp, Arc::clone(resolver), stop.clone()));
        tasks.spawn(server::serve_tcp(
            tcp,
            Arc::clone(resolver),
            cfg.max_tcp_connections,
            cfg.tcp_idle_timeout.to_std(),
            stop.clone(),
        ));
        addrs.push(b.addr);
    }
    Ok(addrs)
}

/// Rebuild the zone whenever the router host names or the leases change; swap it whole.
async fn zone_task(
    spec: ZoneSpec,
    (mut snapshots, built_from): (
        watch::Receiver<Arc<crate::dynamic::Snapshot>>,
        Arc<crate::dynamic::Snapshot>,
    ),
    resolver: Arc<Resolver>,
    mut serial: u32,
    mut stop: watch::Receiver<bool>,
) {
    // What the zone was built from, not what is current now: a snapshot published in between
    // (the leases restored at start, say) is looked at first, not taken as already in the zone.
    let mut hosts: BTreeSet<String> = built_from.hosts.clone();
    let mut leases = Arc::clone(&built_from.leases);
    // The rest of that snapshot (routers, services) is not kept alive by this task.
    drop(built_from);
    snapshots.mark_changed();
    loop {
        tokio::select! {
            r = snapshots.changed() => if r.is_err() { break },
            _ = stop.changed() => break,
        }
        let snap = Arc::clone(&snapshots.borrow_and_update());
        if snap.hosts == hosts && Arc::ptr_eq(&snap.leases, &leases) {
            continue;
        }
        (hosts, leases) = (snap.hosts.clone(), Arc::clone(&snap.leases));
        serial = serial.wrapping_add(1);
        let zone = LocalZone::build(&spec, &hosts, &LeaseName::of(&leases), serial);
        tracing::debug!(names = zone.len(), serial, "dns: local zone updated");
        resolver.set_zone(zone);
    }
    // Keep the last zone until the server stops (a closed channel is not a reason to stop).
    let _ = stop.changed().await;
}

/// For the fuzz target and robustness tests: run one packet through the whole synchronous query
/// path of a fixed server (zone `village.lan`, no upstream), over UDP and TCP, and check that
/// every reply parses and fits. Panics on a broken invariant.
#[doc(hidden)]
pub fn fuzz_packet(packet: &[u8]) {
    use std::sync::OnceLock;
    static RESOLVER: OnceLock<Resolver> = OnceLock::new();
    let resolver = RESOLVER.get_or_init(|| {
        let spec = ZoneSpec {
            origin: zone::fqdn("village.lan").unwrap_or_else(Name::root),
            addrs: vec![[10, 0, 0, 1].into(), std::net::Ipv6Addr::LOCALHOST.into()],
            ttl: 60,
            wildcard: true,
            hosts: vec![("printer".into(), vec![[10, 0, 0, 5].into()])],
        };
        let allowed = crate::ipnet::IpSet::parse(&["127.0.0.1/32"]).unwrap_or_default();
        Resolver::new(
            LocalZone::build(&spec, &BTreeSet::new(), &[], 1),
            cache::Cache::new(16, Duration::ZERO),
            16,
            upstream::Upstreams::new(&[], false, Duration::from_secs(1)),
            handler::Policy {
                allowed,
                local: false,
                auto_address: false,
                domain_needed: true,
                bogus_priv: true,
                rebind_protection: true,
                rebind_allow: Vec::new(),
                serve_stale: true,
            },
            4,
            None,
        )
    });
    let now = std::time::Instant::now();
    for (client, t) in [
        (
            SocketAddr::from(([127, 0, 0, 1], 5353)),
            wire::Transport::Udp,
        ),
        (
            SocketAddr::from(([127, 0, 0, 1], 5353)),
            wire::Transport::Tcp,
        ),
        (
            SocketAddr::from(([192, 0, 2, 1], 5353)),
            wire::Transport::Udp,
        ),
    ] {
        match resolver.handle(packet, client, t, now) {
            handler::Step::Reply(bytes) => {
                let limit = if t == wire::Transport::Udp {
                    wire::EDNS_PAYLOAD
                } else {
                    u16::MAX
                };
                assert!(bytes.len() <= usize::from(limit), "reply too big");
                let reply = hickory_proto::op::Message::from_vec(&bytes);
                assert!(reply.is_ok(), "reply does not parse: {reply:?}");
            }
            handler::Step::Drop => {}
            handler::Step::Forward(_) => panic!("forwarded without upstreams"),
        }
    }
}
