//! Starting the proxy: every entrypoint's sockets (one per worker), the access-log writer,
//! the upstream limits and the worker threads that serve them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::{Listening, StartError};
use crate::config::{self, Config};
use crate::dynamic::EntryPointSpec;
use crate::proxy::{self, entrypoint, forward::UpstreamLimits};

/// The proxy's worker threads: `[limits] workers`, or one per core.
pub(crate) fn worker_count(cfg: &Config) -> usize {
    match cfg.limits.workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
    .clamp(1, 256)
}

/// With `[api] insecure`, the dashboard is on the `traefik` entrypoint: printed as such.
pub(crate) fn list_dashboard(cfg: &Config, listening: &mut Vec<Listening>) {
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

/// Every entrypoint's sockets, one per worker (SO_REUSEPORT), and where each listens.
pub(crate) type Bound = BTreeMap<String, (Vec<std::net::TcpListener>, SocketAddr)>;

pub(crate) fn bind_entrypoints(
    cfg: &Config,
    workers: usize,
) -> Result<(Bound, Vec<Listening>), StartError> {
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
pub(crate) fn start_access_log(
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

pub(crate) fn upstream_limits(
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
pub(crate) fn start_workers(
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
