//! Worker threads: each a single-threaded tokio runtime serving its share of every entrypoint
//! (one SO_REUSEPORT socket each) with its own upstream pool, like nginx's workers. Requests
//! hold the snapshot through the worker's own reference to it (`held`), so that no reference
//! count is written by several workers a request; what is shared across workers is behind short
//! locks only (a balancer's round-robin position, a rate-limit table).

use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinSet;

use super::entrypoint::{self, ConnLimits};
use super::forward::{Upstream, UpstreamLimits};
use super::{EntryPoint, Proxy};

/// How often a worker looks for a replaced snapshot to let go of.
const RENEW: std::time::Duration = std::time::Duration::from_secs(2);

/// What one worker thread serves.
pub struct WorkerSet {
    pub entrypoints: Vec<(std::net::TcpListener, Arc<EntryPoint>, ConnLimits)>,
}

/// What every worker gets a copy of.
pub struct Shared {
    pub snapshot: Arc<arc_swap::ArcSwap<crate::dynamic::Snapshot>>,
    pub upstream: UpstreamLimits,
    pub access_log: Option<super::accesslog::AccessLog>,
    /// This host's name, for X-Forwarded-Server.
    pub server_name: http::HeaderValue,
    pub admin: crate::admin::Info,
    /// This worker's index (its shard of the request metrics).
    pub worker: usize,
}

/// One worker thread: a single-threaded runtime serving its share of every entrypoint.
pub fn run(set: WorkerSet, shared: Shared, stop: watch::Receiver<bool>) {
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
        let proxy = Arc::new(Proxy {
            held: super::held::Held::new(Arc::clone(&shared.snapshot)),
            snapshot: shared.snapshot,
            upstream: Upstream::new(shared.upstream),
            access_log: shared.access_log,
            server_name: shared.server_name,
            metrics: (shared.admin.metrics.clone()).map(|m| (m, shared.worker)),
            admin: shared.admin,
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
        // A worker without requests lets go of a replaced snapshot within a few seconds.
        let renewing = tokio::spawn({
            let proxy = Arc::clone(&proxy);
            async move {
                loop {
                    tokio::time::sleep(RENEW).await;
                    proxy.held.renew();
                }
            }
        });
        while serving.join_next().await.is_some() {}
        renewing.abort();
    });
}

/// This machine's host name, for X-Forwarded-Server.
pub fn server_name() -> http::HeaderValue {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .and_then(|h| http::HeaderValue::from_str(h.trim()).ok())
        .unwrap_or_else(|| http::HeaderValue::from_static("boma"))
}
