//! boma: one binary for a community network gateway. This crate root is the composition root
//! only: the module tree, and the wiring that turns a validated [`config::Config`] into a running
//! gateway. Providers feed fragments to the assembler task, which publishes snapshots that the
//! proxy workers, DNS and the health checker read. Data flows one way and so do the imports
//! (`docs/architecture.md`); nothing here serves a request or holds configuration logic.
#![forbid(unsafe_code)]

pub mod admin;
pub mod config;
pub mod dns;
pub mod dynamic;
pub mod ipnet;
pub mod linelog;
pub mod lru;
pub mod metrics;
pub mod net;
pub mod providers;
pub mod proxy;
pub mod rule;
pub mod runtime;
pub mod store;
pub mod tlsclient;
pub mod update;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use config::Config;
use dynamic::{AssembleCtx, EntryPointSpec, Fragment, Store};
use proxy::entrypoint;
use proxy::forward::UpstreamLimits;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("entrypoint {name}: cannot listen on {addr}: {source}")]
    Bind {
        name: String,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("entrypoint {name}: {message}")]
    EntryPoint { name: String, message: String },
    #[error("cannot start a worker thread: {0}")]
    Thread(std::io::Error),
    #[error(transparent)]
    Dns(#[from] dns::DnsError),
    #[error("access log: {0}")]
    AccessLog(String),
    #[error("provider {name}: {message}")]
    Provider { name: String, message: String },
    #[error("[admin] users: {0}")]
    Admin(String),
}

/// A listener that is bound and about to serve, as printed at start-up.
#[derive(Debug, Clone)]
pub struct Listening {
    pub what: &'static str,
    pub name: String,
    pub addr: SocketAddr,
    /// How to reach it: `http`, `https` (an entrypoint with `http.tls`) or `udp+tcp` (DNS).
    pub scheme: &'static str,
}

/// The proxy's worker threads: `[limits] workers`, or one per core.
fn worker_count(cfg: &Config) -> usize {
    match cfg.limits.workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
    .clamp(1, 256)
}

/// With `[api] insecure`, the dashboard is on the `traefik` entrypoint: printed as such.
fn list_dashboard(cfg: &Config, listening: &mut Vec<Listening>) {
    if cfg.api.as_ref().is_some_and(|a| a.insecure)
        && let Some(l) = listening.iter().find(|l| l.name == "traefik")
    {
        let addr = l.addr;
        listening.push(Listening {
            what: "admin",
            name: "dashboard".into(),
            addr,
            scheme: "http",
        });
    }
}

/// A started gateway: its listeners and the handle to stop it.
///
/// Connections are served by worker threads, each a single-threaded tokio runtime with its own
/// listening socket per entrypoint (SO_REUSEPORT) and its own upstream pool, and DNS by a thread
/// of its own. Everything else (providers, the assembler, health checks, the network side, the
/// access-log writer) runs on the caller's (control) runtime.
pub struct Gateway {
    pub listening: Vec<Listening>,
    pub store: Store,
    pub workers: usize,
    /// The DHCP server's leases, state and counters, when `[lan]` and `[dhcp]` are configured.
    pub dhcp: Option<net::dhcp::Handle>,
    /// What the network set-up must undo at shutdown (boma's nftables table).
    network: net::setup::Network,
    /// The DNS server's query path (counters), when `[dns]` is configured.
    pub dns: Option<Arc<dns::Resolver>>,
    /// A/B updates: uploads, the trial's commit.
    pub update: Arc<update::Updater>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
    threads: Vec<std::thread::JoinHandle<()>>,
    log_task: Option<tokio::task::JoinHandle<()>>,
    grace: Duration,
}

impl Gateway {
    /// Bind every listener and start every component of `cfg`, in this order: the LAN links,
    /// the entrypoints' sockets (a bad address fails start-up before anything runs), the access
    /// log, DNS (its own thread), the proxy workers, the assembler with what is known now, the
    /// providers, and the network side (firewall, WAN, DHCP), whose redirects need the ports.
    pub async fn start(cfg: &Config) -> Result<Gateway, StartError> {
        for w in cfg.warnings() {
            tracing::warn!("configuration: {w}");
        }
        let (stop, stop_rx) = watch::channel(false);
        let store = Store::new();
        let mut tasks = JoinSet::new();
        // What fails here (an interface not there yet) is retried in the background by
        // `net::setup::start`.
        let links_ok = match net::setup::links_up(cfg).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "net: LAN/WAN set-up failed; retrying in the background");
                false
            }
        };
        let workers = worker_count(cfg);
        let (bound, mut listening) = bind_entrypoints(cfg, workers)?;
        let (access_log, log_task) = start_access_log(cfg)?;
        let dhcp_server = net::dhcp::ServerConfig::from_config(cfg);
        let dhcp_channels = dhcp_server.as_ref().map(|_| net::dhcp::Channels::new());
        let resolvers = open_resolvers(cfg);
        let mut threads = Vec::new();
        let dns = start_dns(cfg, &store, &stop_rx, &mut listening, &mut threads)?;
        let dhcp_handle = dhcp_channels.as_ref().map(|(_, h)| h.clone());
        let admin_info = admin_info(
            cfg,
            &listening,
            workers,
            (&resolvers, dns.clone(), dhcp_handle),
        );
        let updater = Arc::clone(&admin_info.update);
        let upstream_tls =
            proxy::connect::UpstreamTls::new(cfg.servers_transport.clone().unwrap_or_default());
        let shared = proxy::worker::Shared {
            snapshot: Arc::clone(&store.current),
            upstream: upstream_limits(&cfg.limits, Arc::clone(&upstream_tls)),
            access_log,
            server_name: proxy::worker::server_name(),
            admin: admin_info,
            worker: 0,
        };
        let (specs, grace) = start_workers(cfg, bound, workers, &shared, &stop_rx, &mut threads)?;
        let assembler = (specs, resolvers, shared.admin.metrics.clone());
        let frag_tx = start_assembler(cfg, assembler, &store, &mut tasks, &stop_rx)?;
        tasks.spawn(proxy::health::run(
            store.clone(),
            upstream_tls,
            stop_rx.clone(),
        ));
        start_providers(cfg, &frag_tx, &mut tasks, &stop_rx)?;
        list_dashboard(cfg, &mut listening);
        let net_parts = NetParts {
            links_ok,
            dhcp: dhcp_server.zip(dhcp_channels),
        };
        let (network, dhcp) = start_network(
            cfg,
            net_parts,
            &listening,
            dns.as_ref(),
            &frag_tx,
            &mut tasks,
            &stop_rx,
        );
        drop(frag_tx);
        Ok(Gateway {
            listening,
            store,
            workers,
            dhcp,
            network,
            dns,
            update: updater,
            stop,
            tasks,
            threads,
            log_task,
            grace,
        })
    }

    /// Stop accepting, drain in-flight requests up to the grace period, stop every task.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        self.network.down();
        let grace = self.grace + Duration::from_secs(1);
        let all = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(grace, all).await.is_err() {
            self.tasks.shutdown().await;
        }
        // Workers stop by themselves once drained (their serve loops saw the flag).
        let threads = std::mem::take(&mut self.threads);
        let joined = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        });
        let _ = tokio::time::timeout(grace, joined).await;
        // The workers' log handles are gone: the writer flushes what is queued and ends.
        if let Some(task) = self.log_task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
        }
    }
}

/// What the network side starts with: whether the first link set-up worked, and the DHCP
/// server's configuration with its channels.
struct NetParts {
    links_ok: bool,
    dhcp: Option<(
        net::dhcp::ServerConfig,
        (net::dhcp::Channels, net::dhcp::Handle),
    )>,
}

/// Forwarding and boma's nftables table (the redirect targets are bound by now), the WAN DHCP
/// client, the interface addresses `[dns] address = "auto"` answers with, the DHCP server and
/// the provider that feeds its leases to the assembler.
fn start_network(
    cfg: &Config,
    parts: NetParts,
    listening: &[Listening],
    dns: Option<&Arc<dns::Resolver>>,
    frag_tx: &mpsc::Sender<(String, Fragment)>,
    tasks: &mut JoinSet<()>,
    stop: &watch::Receiver<bool>,
) -> (net::setup::Network, Option<net::dhcp::Handle>) {
    let ports = net::setup::Ports {
        dns: (listening.iter())
            .find(|l| l.what == "dns")
            .map(|l| l.addr.port()),
        http: (cfg.nat.as_ref())
            .and_then(|n| listening.iter().find(|l| l.name == n.http_entry_point))
            .map(|l| l.addr.port()),
    };
    let network = net::setup::start(cfg, ports, parts.links_ok, tasks, stop.clone());
    net::setup::spawn_wan_dhcp(cfg, tasks, stop.clone());
    net::wifi::spawn(cfg, tasks, stop.clone());
    let follow = (cfg.dns.as_ref()).is_some_and(|d| d.auto_address() || d.local_service());
    if let (Some(resolver), true) = (dns, follow) {
        let resolver = Arc::clone(resolver);
        let wan = cfg.wan.as_ref().map(|w| w.interface.clone());
        net::setup::follow_addresses(tasks, stop.clone(), wan, move |subnets| {
            resolver.set_interfaces(subnets)
        });
    }
    let dhcp = parts.dhcp.map(|(server, (channels, handle))| {
        let interface = server.interface.clone();
        tasks.spawn(net::dhcp::run(server, channels, stop.clone()));
        tasks.spawn(providers::dhcp::run(
            handle.clone(),
            interface,
            frag_tx.clone(),
            stop.clone(),
        ));
        handle
    });
    (network, dhcp)
}

/// Every entrypoint's sockets, one per worker (SO_REUSEPORT), and where each listens.
type Bound = BTreeMap<String, (Vec<std::net::TcpListener>, SocketAddr)>;

fn bind_entrypoints(cfg: &Config, workers: usize) -> Result<(Bound, Vec<Listening>), StartError> {
    let mut bound = BTreeMap::new();
    let mut listening = Vec::new();
    for (name, ep) in &cfg.entry_points {
        let addr = ep.socket_addr();
        let sockets = entrypoint::bind(addr, workers).map_err(|source| StartError::Bind {
            name: name.clone(),
            addr,
            source,
        })?;
        let local = (sockets.first())
            .and_then(|l| l.local_addr().ok())
            .unwrap_or(addr);
        listening.push(Listening {
            what: "proxy",
            name: name.clone(),
            addr: local,
            scheme: if ep.http.tls.is_some() {
                "https"
            } else {
                "http"
            },
        });
        bound.insert(name.clone(), (sockets, local));
    }
    Ok((bound, listening))
}

/// The access-log writer, when `[accessLog]` is set. It ends when the last handle (the
/// workers' proxies) is dropped.
fn start_access_log(
    cfg: &Config,
) -> Result<
    (
        Option<proxy::accesslog::AccessLog>,
        Option<tokio::task::JoinHandle<()>>,
    ),
    StartError,
> {
    let Some(a) = &cfg.access_log else {
        return Ok((None, None));
    };
    let format = match a.format {
        config::LogFormat::Json => proxy::accesslog::Format::Json,
        _ => proxy::accesslog::Format::Common,
    };
    let queue = usize::try_from(a.buffering_size)
        .unwrap_or(usize::MAX)
        .clamp(1024, 65_536);
    let (filter, fields) = proxy::setup::access_log_shape(a).map_err(StartError::AccessLog)?;
    let (log, task) =
        proxy::accesslog::AccessLog::start(a.file_path.clone(), format, queue, filter, fields);
    Ok((Some(log), Some(task)))
}

fn upstream_limits(
    limits: &config::Limits,
    tls: Arc<proxy::connect::UpstreamTls>,
) -> UpstreamLimits {
    UpstreamLimits {
        tls,
        connect_timeout: limits.upstream_connect_timeout.to_std(),
        response_timeout: limits.upstream_response_timeout.as_timeout(),
        idle_per_host: limits.upstream_idle_per_host,
        idle_timeout: limits.upstream_idle_timeout.to_std(),
        passive_cooldown: limits.passive_cooldown.to_std(),
    }
}

/// One thread per worker, each serving its socket of every entrypoint. Returns the assembler's
/// view of the entrypoints and the longest grace period.
fn start_workers(
    cfg: &Config,
    bound: Bound,
    workers: usize,
    shared: &proxy::worker::Shared,
    stop: &watch::Receiver<bool>,
    threads: &mut Vec<std::thread::JoinHandle<()>>,
) -> Result<(Vec<EntryPointSpec>, Duration), StartError> {
    let ports: BTreeMap<String, u16> = (bound.iter())
        .map(|(n, (_, a))| (n.clone(), a.port()))
        .collect();
    let mut sets: Vec<proxy::worker::WorkerSet> = (0..workers)
        .map(|_| proxy::worker::WorkerSet {
            entrypoints: Vec::new(),
        })
        .collect();
    let mut specs = Vec::new();
    let mut grace = Duration::from_secs(1);
    for (name, (sockets, _)) in bound {
        let ep = &cfg.entry_points[&name];
        let stats = (shared.admin.entrypoints.iter())
            .find(|e| e.name == name)
            .map(|e| Arc::clone(&e.connections))
            .unwrap_or_default();
        let (info, mut conn_limits, spec) =
            proxy::setup::entrypoint_parts(cfg, &name, ep, &ports, stats).map_err(|message| {
                StartError::EntryPoint {
                    name: name.clone(),
                    message,
                }
            })?;
        conn_limits.max_connections = conn_limits.max_connections.div_ceil(workers);
        grace = grace.max(conn_limits.grace);
        specs.push(spec);
        let info = Arc::new(info);
        for (set, socket) in sets.iter_mut().zip(sockets) {
            (set.entrypoints).push((socket, Arc::clone(&info), conn_limits.clone()));
        }
    }
    for (i, set) in sets.into_iter().enumerate() {
        let shared = proxy::worker::Shared {
            snapshot: Arc::clone(&shared.snapshot),
            upstream: shared.upstream.clone(),
            access_log: shared.access_log.clone(),
            server_name: shared.server_name.clone(),
            admin: shared.admin.clone(),
            worker: i,
        };
        let stop = stop.clone();
        let handle = std::thread::Builder::new()
            .name(format!("boma-worker-{i}"))
            .spawn(move || proxy::worker::run(set, shared, stop))
            .map_err(StartError::Thread)?;
        threads.push(handle);
    }
    Ok((specs, grace))
}

/// The DNS server on its own thread, when `[dns]` is there; its addresses join `listening`.
fn start_dns(
    cfg: &Config,
    store: &Store,
    stop: &watch::Receiver<bool>,
    listening: &mut Vec<Listening>,
    threads: &mut Vec<std::thread::JoinHandle<()>>,
) -> Result<Option<Arc<dns::Resolver>>, StartError> {
    let Some(dns_cfg) = &cfg.dns else {
        return Ok(None);
    };
    let (started, thread) = dns::spawn(dns_cfg, store, stop)?;
    threads.push(thread);
    listening.extend(started.addrs.iter().map(|&addr| Listening {
        what: "dns",
        name: "dns".into(),
        addr,
        scheme: "udp+tcp",
    }));
    Ok(Some(started.resolver))
}

/// What the API, dashboard and metrics report, and where they read it.
fn admin_info(
    cfg: &Config,
    listening: &[Listening],
    workers: usize,
    (resolvers, dns, dhcp): (
        &Resolvers,
        Option<Arc<dns::Resolver>>,
        Option<net::dhcp::Handle>,
    ),
) -> admin::Info {
    admin::Info {
        entrypoints: (listening.iter())
            .filter(|l| l.what == "proxy")
            .map(|l| admin::EntryPointInfo {
                name: l.name.clone(),
                address: l.addr,
                connections: Arc::default(),
            })
            .collect(),
        started: std::time::Instant::now(),
        start_date: std::time::SystemTime::now(),
        dhcp,
        update: Arc::new(update::Updater::new(cfg.update.as_ref())),
        local_cas: (resolvers.iter())
            .filter_map(|(n, r)| Some((n.clone(), Arc::clone(r.as_ref().ok()?))))
            .collect(),
        metrics: metrics_registry(cfg, workers),
        dns,
    }
}

/// The request metrics' registry, with `[metrics.prometheus]`: one shard per worker.
fn metrics_registry(cfg: &Config, workers: usize) -> Option<Arc<metrics::Registry>> {
    let p = cfg.metrics.as_ref()?.prometheus.as_ref()?;
    let settings = metrics::Settings {
        buckets: p.buckets.clone(),
        entrypoints: p.add_entry_points_labels,
        routers: p.add_routers_labels,
        services: p.add_services_labels,
        max_series: cfg.limits.max_metric_series,
    };
    Some(Arc::new(metrics::Registry::new(settings, workers)))
}

/// The static configuration's certificate resolvers, opened (a local CA is made on first use of
/// its storage), or why not: a CA that cannot be opened leaves its routers with the default
/// certificate and a problem, never the gateway down.
type Resolvers = BTreeMap<String, Result<Arc<runtime::tls::local_ca::LocalCa>, String>>;

fn open_resolvers(cfg: &Config) -> Resolvers {
    let mut out = BTreeMap::new();
    for (name, r) in &cfg.certificates_resolvers {
        let Some(ca) = &r.local_ca else { continue };
        let settings = runtime::tls::local_ca::Settings {
            storage: ca.storage.clone(),
            common_name: ca.common_name.clone(),
            domains: (ca.domains.iter())
                .map(|d| d.trim_end_matches('.').to_ascii_lowercase())
                .collect(),
            leaf_validity: ca.certificate_duration.to_std(),
            max_leaves: ca.max_certificates,
        };
        let opened = runtime::tls::local_ca::LocalCa::open(settings).map(Arc::new);
        if let Err(e) = &opened {
            tracing::error!(resolver = %name, error = %e, "local CA unavailable");
        }
        out.insert(name.clone(), opened);
    }
    out
}

/// The assembler task, after assembling what is known now (the internal provider), so the API
/// answers as soon as boma says ready. Returns where providers send their fragments.
fn start_assembler(
    cfg: &Config,
    (entrypoints, resolvers, metrics): (
        Vec<EntryPointSpec>,
        Resolvers,
        Option<Arc<metrics::Registry>>,
    ),
    store: &Store,
    tasks: &mut JoinSet<()>,
    stop: &watch::Receiver<bool>,
) -> Result<mpsc::Sender<(String, Fragment)>, StartError> {
    let (frag_tx, frag_rx) = mpsc::channel::<(String, Fragment)>(64);
    let ctx = AssembleCtx {
        entrypoints,
        max_routes: cfg.limits.max_routes,
        middleware_bounds: runtime::middlewares::Bounds {
            max_sources: cfg.limits.rate_limit_sources,
            max_buffered_memory: cfg.limits.max_buffered_memory,
            max_buffered_body: cfg.limits.max_buffered_body,
        },
        admin: admin_gate(cfg)?,
        resolvers,
    };
    let mut initial = BTreeMap::new();
    if cfg.api.is_some() || cfg.metrics.is_some() {
        let internal =
            providers::internal::fragment(cfg).map_err(|message| StartError::EntryPoint {
                name: "traefik".into(),
                message,
            })?;
        initial.insert("internal".to_string(), internal);
    }
    store.publish(Arc::new(dynamic::assemble(&initial, &ctx, None, 1)));
    let (store, stop) = (store.clone(), stop.clone());
    tasks.spawn(dynamic::run::run(
        frag_rx,
        (ctx, metrics),
        initial,
        store,
        stop,
    ));
    Ok(frag_tx)
}

/// The check `[admin] users` puts before the API and dashboard behind an operator's router.
fn admin_gate(cfg: &Config) -> Result<dynamic::AdminGate, StartError> {
    let users = cfg
        .admin
        .as_ref()
        .map(|a| a.users.clone())
        .unwrap_or_default();
    if users.is_empty() {
        return Ok(dynamic::AdminGate::Unset);
    }
    let auth = runtime::middlewares::MiddlewareConfig {
        basic_auth: Some(runtime::middlewares::BasicAuthConfig {
            users,
            realm: "boma".into(),
            remove_header: true,
            ..Default::default()
        }),
        ..Default::default()
    };
    match runtime::middlewares::compile(&auth) {
        Ok(runtime::middlewares::Compiled::One(m)) => Ok(dynamic::AdminGate::Users(Arc::new(m))),
        Ok(runtime::middlewares::Compiled::Chain(_)) => unreachable!("basicAuth is not a chain"),
        Err(e) => Err(StartError::Admin(e.to_string())),
    }
}

/// The file, docker and swarm providers, each a task sending fragments to the assembler.
fn start_providers(
    cfg: &Config,
    frag_tx: &mpsc::Sender<(String, Fragment)>,
    tasks: &mut JoinSet<()>,
    stop: &watch::Receiver<bool>,
) -> Result<(), StartError> {
    let providers = cfg.providers.as_ref();
    if let Some(file) = providers.and_then(|p| p.file.as_ref()) {
        let src = providers::file::FileSource {
            filename: file.filename.clone(),
            directory: file.directory.clone(),
            watch: file.watch,
            poll: Duration::from_secs(1),
        };
        tasks.spawn(providers::file::run(src, frag_tx.clone(), stop.clone()));
    }
    for (name, section, swarm) in [
        ("docker", providers.and_then(|p| p.docker.as_ref()), false),
        ("swarm", providers.and_then(|p| p.swarm.as_ref()), true),
    ] {
        let Some(section) = section else { continue };
        let sources =
            providers::docker::sources(section, swarm).map_err(|message| StartError::Provider {
                name: name.into(),
                message,
            })?;
        for src in sources {
            tasks.spawn(providers::docker::run(src, frag_tx.clone(), stop.clone()));
        }
    }
    Ok(())
}
