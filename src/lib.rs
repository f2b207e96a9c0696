//! boma: one binary for a community network gateway. This crate root holds the module tree and
//! the wiring that turns a validated [`config::Config`] into a running gateway: providers feed
//! fragments to the assembler task, which publishes snapshots that the proxy entrypoints and the
//! health checker read. Data flows one way (see `shared/DESIGN.md`); nothing here serves a request.
#![forbid(unsafe_code)]

pub mod admin;
pub mod config;
pub mod dns;
pub mod dynamic;
pub mod ipnet;
pub mod linelog;
pub mod lru;
pub mod net;
pub mod providers;
pub mod proxy;
pub mod rule;
pub mod runtime;
pub mod store;
pub mod tlsclient;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use config::Config;
use dynamic::{AssembleCtx, EntryPointSpec, Fragment, Store};
use proxy::entrypoint::{self, ConnLimits};
use proxy::forward::{Upstream, UpstreamLimits};
use proxy::{EntryPoint, Proxy};

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
    #[error("{0}")]
    AccessLog(String),
    #[error("provider {name}: {message}")]
    Provider { name: String, message: String },
}

/// A listener that is bound and about to serve, as printed at start-up.
#[derive(Debug, Clone)]
pub struct Listening {
    pub what: &'static str,
    pub name: String,
    pub addr: SocketAddr,
}

/// A started gateway: its listeners and the handle to stop it.
///
/// Connections are served by worker threads, each a single-threaded tokio runtime with its own
/// listening socket per entrypoint (SO_REUSEPORT) and its own upstream pool: no lock and no
/// cross-thread wake-up on the request path. Everything else (providers, the assembler, health
/// checks, the access-log writer) runs on the caller's runtime.
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
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
    threads: Vec<std::thread::JoinHandle<()>>,
    log_task: Option<tokio::task::JoinHandle<()>>,
    grace: Duration,
}

/// What one worker thread serves.
struct WorkerSet {
    entrypoints: Vec<(std::net::TcpListener, Arc<EntryPoint>, ConnLimits)>,
}

impl Gateway {
    /// Bind every listener and start every component of `cfg`.
    pub async fn start(cfg: &Config) -> Result<Gateway, StartError> {
        let (stop, stop_rx) = watch::channel(false);
        let store = Store::new();
        let mut tasks = JoinSet::new();
        // The LAN (and a static WAN) first: DNS and entrypoints may listen on its address. What
        // fails (an interface not there yet) is retried in the background by `setup::start`.
        let links_ok = match net::setup::links_up(cfg).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "net: LAN/WAN set-up failed; retrying in the background");
                false
            }
        };
        let mut listening = Vec::new();
        let limits = &cfg.limits;
        let workers = match limits.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
        .clamp(1, 256);

        // TLS towards https:// servers, made on first use (its files were checked with the
        // configuration).
        let upstream_tls =
            proxy::connect::UpstreamTls::new(cfg.servers_transport.clone().unwrap_or_default());
        let upstream_limits = UpstreamLimits {
            tls: upstream_tls.clone(),
            connect_timeout: limits.upstream_connect_timeout.to_std(),
            response_timeout: limits.upstream_response_timeout.as_timeout(),
            idle_per_host: limits.upstream_idle_per_host,
            idle_timeout: limits.upstream_idle_timeout.to_std(),
            passive_cooldown: limits.passive_cooldown.to_std(),
        };
        let mut log_task = None;
        let access_log = cfg.access_log.as_ref().map(|a| {
            let format = match a.format {
                config::LogFormat::Json => proxy::accesslog::Format::Json,
                _ => proxy::accesslog::Format::Common,
            };
            let queue = usize::try_from(a.buffering_size)
                .unwrap_or(usize::MAX)
                .clamp(1024, 65_536);
            let (filter, fields) = access_log_shape(a)?;
            // The writer ends when the last handle is dropped (the workers' proxies).
            let (log, task) = proxy::accesslog::AccessLog::start(
                a.file_path.clone(),
                format,
                queue,
                filter,
                fields,
            );
            log_task = Some(task);
            Ok::<_, StartError>(log)
        });
        let access_log = access_log.transpose()?;

        // Bind every entrypoint first: a bad address fails start-up before anything runs, and
        // redirections know the real port of their target (also with port 0).
        let mut bound = BTreeMap::new();
        for (name, ep) in &cfg.entry_points {
            let addr = ep.socket_addr();
            let sockets = entrypoint::bind(addr, workers).map_err(|source| StartError::Bind {
                name: name.clone(),
                addr,
                source,
            })?;
            let local = sockets
                .first()
                .and_then(|l| l.local_addr().ok())
                .unwrap_or(addr);
            listening.push(Listening {
                what: "proxy",
                name: name.clone(),
                addr: local,
            });
            bound.insert(name.clone(), (sockets, local));
        }
        let ports: BTreeMap<String, u16> = bound
            .iter()
            .map(|(n, (_, a))| (n.clone(), a.port()))
            .collect();
        let dhcp_server = net::dhcp::ServerConfig::from_config(cfg);
        let dhcp_channels = dhcp_server.as_ref().map(|_| net::dhcp::Channels::new());
        let admin_info = admin::Info {
            entrypoints: listening.iter().map(|l| (l.name.clone(), l.addr)).collect(),
            started: std::time::Instant::now(),
            dhcp: dhcp_channels.as_ref().map(|(_, h)| h.clone()),
        };
        // DNS: bound before anything runs too; its tasks live on this (the control) runtime.
        let dns = match &cfg.dns {
            Some(dns_cfg) => {
                let started = dns::start(dns_cfg, &store, &stop_rx, &mut tasks)?;
                for addr in started.addrs {
                    listening.push(Listening {
                        what: "dns",
                        name: "dns".into(),
                        addr,
                    });
                }
                Some(started.resolver)
            }
            None => None,
        };
        let mut sets: Vec<WorkerSet> = (0..workers)
            .map(|_| WorkerSet {
                entrypoints: Vec::new(),
            })
            .collect();
        let mut specs = Vec::new();
        let mut grace = Duration::from_secs(1);
        for (name, (sockets, _)) in bound {
            let ep = &cfg.entry_points[&name];
            let (info, mut conn_limits, spec) = entrypoint_parts(cfg, &name, ep, &ports)?;
            conn_limits.max_connections = conn_limits.max_connections.div_ceil(workers);
            grace = grace.max(conn_limits.grace);
            specs.push(spec);
            let info = Arc::new(info);
            for (set, socket) in sets.iter_mut().zip(sockets) {
                set.entrypoints
                    .push((socket, Arc::clone(&info), conn_limits.clone()));
            }
        }
        let server_name = server_name();
        let mut threads = Vec::new();
        for (i, set) in sets.into_iter().enumerate() {
            let proxy_parts = (
                Arc::clone(&store.current),
                upstream_limits.clone(),
                access_log.clone(),
                server_name.clone(),
                admin_info.clone(),
            );
            let stop_rx = stop_rx.clone();
            let handle = std::thread::Builder::new()
                .name(format!("boma-worker-{i}"))
                .spawn(move || run_worker(set, proxy_parts, stop_rx))
                .map_err(StartError::Thread)?;
            threads.push(handle);
        }

        // Assembler: fragments in, snapshots out. What is known now (the internal provider) is
        // assembled before start-up finishes, so the API answers as soon as boma says ready.
        let (frag_tx, frag_rx) = mpsc::channel::<(String, Fragment)>(64);
        let ctx = AssembleCtx {
            entrypoints: specs,
            max_routes: limits.max_routes,
            middleware_bounds: runtime::middlewares::Bounds {
                max_sources: limits.rate_limit_sources,
            },
        };
        let mut initial = BTreeMap::new();
        if let Some(api) = &cfg.api {
            initial.insert(
                "internal".to_string(),
                internal_fragment(api, &cfg.entry_points)?,
            );
        }
        store.publish(Arc::new(dynamic::assemble(&initial, &ctx, None, 1)));
        tasks.spawn(assembler(
            frag_rx,
            ctx,
            initial,
            store.clone(),
            stop_rx.clone(),
        ));
        tasks.spawn(health_task(store.clone(), upstream_tls, stop_rx.clone()));

        // Providers.
        if let Some(file) = cfg.providers.as_ref().and_then(|p| p.file.as_ref()) {
            let src = providers::file::FileSource {
                filename: file.filename.clone(),
                directory: file.directory.clone(),
                watch: file.watch,
                poll: Duration::from_secs(1),
            };
            tasks.spawn(providers::file::run(src, frag_tx.clone(), stop_rx.clone()));
        }
        let providers = cfg.providers.as_ref();
        for (name, section, swarm) in [
            ("docker", providers.and_then(|p| p.docker.as_ref()), false),
            ("swarm", providers.and_then(|p| p.swarm.as_ref()), true),
        ] {
            let Some(section) = section else { continue };
            let sources = providers::docker::sources(section, swarm).map_err(|message| {
                StartError::Provider {
                    name: name.into(),
                    message,
                }
            })?;
            for src in sources {
                tasks.spawn(providers::docker::run(
                    src,
                    frag_tx.clone(),
                    stop_rx.clone(),
                ));
            }
        }
        if cfg.api.as_ref().is_some_and(|a| a.insecure) {
            let addr = listening
                .iter()
                .find(|l| l.name == "traefik")
                .map(|l| l.addr);
            if let Some(addr) = addr {
                listening.push(Listening {
                    what: "admin",
                    name: "dashboard".into(),
                    addr,
                });
            }
        }
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

type ProxyParts = (
    Arc<arc_swap::ArcSwap<dynamic::Snapshot>>,
    UpstreamLimits,
    Option<proxy::accesslog::AccessLog>,
    http::HeaderValue,
    admin::Info,
);

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
    if let (Some(resolver), true) = (dns, cfg.dns.as_ref().is_some_and(|d| d.auto_address())) {
        let resolver = Arc::clone(resolver);
        net::setup::follow_addresses(tasks, stop.clone(), move |subnets| {
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

/// One worker thread: a single-threaded runtime serving its share of every entrypoint.
fn run_worker(set: WorkerSet, parts: ProxyParts, stop: watch::Receiver<bool>) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start a worker runtime");
            return;
        }
    };
    runtime.block_on(async move {
        let (snapshot, limits, access_log, server_name, admin) = parts;
        let proxy = Arc::new(Proxy {
            snapshot,
            upstream: Upstream::new(limits),
            access_log,
            server_name,
            admin,
        });
        let mut serving = JoinSet::new();
        for (socket, ep, limits) in set.entrypoints {
            serving.spawn(entrypoint::serve(
                socket,
                Arc::clone(&proxy),
                ep,
                limits,
                stop.clone(),
            ));
        }
        while serving.join_next().await.is_some() {}
    });
}

/// The access log's filters and JSON field modes from `[accessLog]`.
fn access_log_shape(
    a: &config::AccessLog,
) -> Result<(proxy::accesslog::Filter, proxy::accesslog::Fields), StartError> {
    use proxy::accesslog::{Fields, Filter, HeaderMode};
    let filter = Filter {
        status_ranges: Filter::parse_status(&a.filters.status_codes)
            .map_err(StartError::AccessLog)?,
        retry_attempts: a.filters.retry_attempts,
        min_duration: a.filters.min_duration.as_timeout(),
    };
    let mode = |m: config::FieldMode| match m {
        config::FieldMode::Keep => HeaderMode::Keep,
        config::FieldMode::Drop => HeaderMode::Drop,
        config::FieldMode::Redact => HeaderMode::Redact,
    };
    let by_mode = |want: config::FieldMode| {
        a.fields
            .names
            .iter()
            .filter(|(_, m)| **m == want)
            .map(|(n, _)| n.clone())
            .collect::<Vec<_>>()
    };
    let fields = Fields {
        drop_by_default: a.fields.default_mode == config::FieldMode::Drop,
        keep: by_mode(config::FieldMode::Keep),
        drop: by_mode(config::FieldMode::Drop),
        redact: by_mode(config::FieldMode::Redact),
        headers_default: mode(a.fields.headers.default_mode),
        headers: a
            .fields
            .headers
            .names
            .iter()
            .map(|(n, m)| (n.to_ascii_lowercase(), mode(*m)))
            .collect(),
    };
    Ok((filter, fields))
}

/// This machine's host name, for X-Forwarded-Server.
fn server_name() -> http::HeaderValue {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .and_then(|h| http::HeaderValue::from_str(h.trim()).ok())
        .unwrap_or_else(|| http::HeaderValue::from_static("boma"))
}

/// The proxy's and the assembler's view of one configured entrypoint.
fn entrypoint_parts(
    cfg: &Config,
    name: &str,
    ep: &config::EntryPoint,
    ports: &BTreeMap<String, u16>,
) -> Result<(EntryPoint, ConnLimits, EntryPointSpec), StartError> {
    let err = |message: String| StartError::EntryPoint {
        name: name.to_string(),
        message,
    };
    if ep.http.tls.is_some() {
        return Err(err(
            "http.tls is set but boma does not serve TLS yet; refusing to serve plain HTTP \
             where TLS was asked for"
                .into(),
        ));
    }
    let timeouts = &ep.transport.responding_timeouts;
    let redirect = match ep.redirection() {
        Some(r) => {
            let port = match r.target() {
                config::RedirectTarget::Port(p) => p,
                config::RedirectTarget::EntryPoint(to) => *ports
                    .get(to)
                    .ok_or_else(|| err(format!("redirection to unknown entrypoint `{to}`")))?,
            };
            let cfg = runtime::middlewares::MiddlewareConfig {
                redirect_scheme: Some(runtime::middlewares::RedirectSchemeConfig {
                    scheme: r.scheme.clone(),
                    port: port.to_string(),
                    permanent: r.permanent,
                }),
                ..Default::default()
            };
            match runtime::middlewares::compile(&cfg) {
                Ok(runtime::middlewares::Compiled::One(m)) => Some(Arc::new(m)),
                Ok(_) => None,
                Err(e) => return Err(err(format!("redirection: {e}"))),
            }
        }
        None => None,
    };
    let trusted = crate::ipnet::IpSet::parse(&ep.forwarded_headers.trusted_ips)
        .map_err(|e| err(format!("forwardedHeaders.trustedIPs: {e}")))?;
    let idle = timeouts.idle_timeout.to_std();
    let info = EntryPoint {
        name: name.to_string(),
        scheme: "http",
        redirect,
        trusted,
        trust_all: ep.forwarded_headers.insecure,
        idle_timeout: idle,
        write_timeout: timeouts.write_timeout.as_timeout(),
    };
    let limits = ConnLimits {
        max_connections: cfg.limits.max_connections,
        max_header_bytes: cfg.limits.max_header_bytes,
        header_read_timeout: timeouts
            .read_timeout
            .as_timeout()
            .unwrap_or(Duration::from_secs(60)),
        idle_timeout: idle,
        upgraded_idle_timeout: cfg.limits.upgraded_idle_timeout.to_std(),
        grace: ep.transport.life_cycle.grace_time_out.to_std(),
    };
    let spec = EntryPointSpec {
        name: name.to_string(),
        as_default: ep.as_default,
        middlewares: ep.http.middlewares.clone(),
    };
    Ok((info, limits, spec))
}

/// The internal provider: with `[api] insecure = true`, the API and dashboard routers on the
/// `traefik` entrypoint, as Traefik does. Without `insecure`, nothing is published: an operator
/// routes to `api@internal` / `dashboard@internal` with a router of their own (and basicAuth).
fn internal_fragment(
    api: &config::Api,
    entry_points: &BTreeMap<String, config::EntryPoint>,
) -> Result<Fragment, StartError> {
    let mut fragment = Fragment::default();
    if !api.insecure {
        return Ok(fragment);
    }
    if !entry_points.contains_key("traefik") {
        return Err(StartError::EntryPoint {
            name: "traefik".into(),
            message: "[api] insecure = true serves the API on an entrypoint named `traefik`; \
                      define [entryPoints.traefik] with the address it should listen on"
                .into(),
        });
    }
    let router = |rule: &str, service: &str, priority: i64| dynamic::schema::Router {
        rule: rule.to_string(),
        rule_syntax: None,
        entry_points: vec!["traefik".into()],
        middlewares: Vec::new(),
        service: service.to_string(),
        priority: Some(priority),
        tls: None,
        observability: None,
    };
    let mut http = dynamic::schema::Http::default();
    http.routers.insert(
        "api".into(),
        router(
            "PathPrefix(`/api`)",
            "api@internal",
            i64::from(i32::MAX) - 1,
        ),
    );
    if api.dashboard {
        http.routers.insert(
            "dashboard".into(),
            router(
                "PathPrefix(`/`)",
                "dashboard@internal",
                i64::from(i32::MAX) - 2,
            ),
        );
    }
    fragment.config.http = Some(http);
    Ok(fragment)
}

/// Collect fragments, coalesce bursts, assemble, publish only when something changed.
async fn assembler(
    mut rx: mpsc::Receiver<(String, Fragment)>,
    ctx: AssembleCtx,
    mut fragments: BTreeMap<String, Fragment>,
    store: Store,
    mut stop: watch::Receiver<bool>,
) {
    let mut generation = store.load().generation;
    loop {
        let first = tokio::select! {
            m = rx.recv() => m,
            _ = stop.changed() => return,
        };
        let Some((ns, frag)) = first else {
            // Every provider is done (none watches): keep the last snapshot until shutdown.
            let _ = stop.changed().await;
            return;
        };
        let mut changed = fragments.get(&ns) != Some(&frag);
        fragments.insert(ns, frag);
        // Coalesce a burst (several providers, or a container storm) into one assemble.
        while let Ok((ns, frag)) = rx.try_recv() {
            changed |= fragments.get(&ns) != Some(&frag);
            fragments.insert(ns, frag);
        }
        if !changed {
            continue;
        }
        generation += 1;
        let prev = store.load();
        let snapshot = dynamic::assemble(&fragments, &ctx, Some(&prev), generation);
        for p in &snapshot.problems {
            if !prev.problems.contains(p) {
                tracing::warn!(problem = %p, "configuration problem");
            }
        }
        tracing::info!(
            generation,
            routers = snapshot.routers.len(),
            services = snapshot.services.len(),
            problems = snapshot.problems.len(),
            "configuration applied"
        );
        store.publish(Arc::new(snapshot));
    }
}

/// Keep the active health checkers in line with the current snapshot.
async fn health_task(
    store: Store,
    tls: Arc<proxy::connect::UpstreamTls>,
    mut stop: watch::Receiver<bool>,
) {
    let mut manager = proxy::health::HealthManager::new(tls);
    let mut rx = store.subscribe();
    loop {
        {
            let snap = rx.borrow_and_update().clone();
            manager.update(snap.services.iter());
        }
        tokio::select! {
            r = rx.changed() => if r.is_err() { break },
            _ = stop.changed() => break,
        }
    }
    manager.shutdown().await;
}
