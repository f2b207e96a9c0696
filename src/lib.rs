//! boma: one binary for a community network gateway. This crate root is the composition root
//! only: the module tree, and [`Gateway`], which turns a validated [`config::Config`] into a
//! running gateway by running the start-up steps of `wiring` in order. Providers feed fragments
//! to the assembler task, which publishes snapshots that the proxy workers, DNS and the health
//! checker read. Data flows one way and so do the imports (`docs/architecture.md`); nothing
//! here serves a request or holds configuration logic.
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

mod wiring;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

use config::Config;
use dynamic::Store;
pub use wiring::{Listening, StartError};
use wiring::{control, network, proxy as proxy_side};

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
        let workers = proxy_side::worker_count(cfg);
        let (bound, mut listening) = proxy_side::bind_entrypoints(cfg, workers)?;
        let (access_log, log_task) = proxy_side::start_access_log(cfg)?;
        let dhcp_server = net::dhcp::ServerConfig::from_config(cfg);
        let dhcp_channels = dhcp_server.as_ref().map(|_| net::dhcp::Channels::new());
        let resolvers = control::open_resolvers(cfg);
        let mut threads = Vec::new();
        let dns = network::start_dns(cfg, &store, &stop_rx, &mut listening, &mut threads)?;
        let dhcp_handle = dhcp_channels.as_ref().map(|(_, h)| h.clone());
        let admin_info = control::admin_info(
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
            upstream: proxy_side::upstream_limits(&cfg.limits, Arc::clone(&upstream_tls)),
            access_log,
            server_name: proxy::worker::server_name(),
            admin: admin_info,
            worker: 0,
        };
        let (specs, grace) =
            proxy_side::start_workers(cfg, bound, workers, &shared, &stop_rx, &mut threads)?;
        let assembler = (specs, resolvers, shared.admin.metrics.clone());
        let frag_tx = control::start_assembler(cfg, assembler, &store, &mut tasks, &stop_rx)?;
        tasks.spawn(proxy::health::run(
            store.clone(),
            upstream_tls,
            stop_rx.clone(),
        ));
        control::start_providers(cfg, &frag_tx, &mut tasks, &stop_rx)?;
        proxy_side::list_dashboard(cfg, &mut listening);
        let net_parts = network::NetParts {
            links_ok,
            dhcp: dhcp_server.zip(dhcp_channels),
        };
        let (network, dhcp) = network::start_network(
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
