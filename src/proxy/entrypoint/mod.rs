//! Entrypoints: a listening socket each, accepting connections up to a limit and serving HTTP/1.1
//! (boma's own server, [`h1`], for bodyless requests; hyper for the rest) and h2c (prior
//! knowledge, hyper) on them, or, when the first byte is a TLS handshake's,
//! HTTPS (HTTP/1.1, or h2 by ALPN) with the option set the SNI's host asks for and the
//! certificate rustls picks from the snapshot's store; with header-read and idle timeouts, upgrades
//! (WebSocket: the upgraded connection stays in the connection's task, holding its permit, timed
//! out only when idle, closed on drain) and graceful draining on shutdown.
//!
//! Beyond the connection limit, one source may hold at most `max_connections_per_ip`: further
//! connections from it are closed at once and counted, so a slowloris client cannot starve the
//! others.
//!
//! This module owns connections, not requests: each request goes to
//! [`super::Proxy::handle_parts`] (through [`super::Proxy::handle`] when hyper read it).
//! Every connection task is owned by the entrypoint's JoinSet and is aborted after the grace period.
//!
//! Here: binding, accepting within the limits, draining. [`conn`]: one connection from its
//! first byte to its end; [`h1`]: boma's own HTTP/1.1 server; [`activity`]: the idle accounting.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;

use super::{EntryPoint, Proxy};

mod activity;
mod conn;
mod h1;

use conn::{Accepted, Timeouts, serve_conn};

/// Connection-level limits of an entrypoint (per worker).
#[derive(Debug, Clone)]
pub struct ConnLimits {
    pub max_connections: usize,
    pub max_header_bytes: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    /// An upgraded connection with no byte moved for this long is closed.
    pub upgraded_idle_timeout: Duration,
    pub grace: Duration,
}

/// Open connections per source address, against a limit; shared by the workers of an
/// entrypoint (touched once per accepted and once per closed connection, never per request).
#[derive(Debug)]
pub struct PerSource {
    limit: usize,
    open: Arc<std::sync::Mutex<HashMap<IpAddr, usize>>>,
}

/// A connection's place in [`PerSource`]; given back when dropped.
pub struct Slot {
    ip: IpAddr,
    open: Arc<std::sync::Mutex<HashMap<IpAddr, usize>>>,
}

impl PerSource {
    pub fn new(limit: usize) -> Self {
        PerSource {
            limit: limit.max(1),
            open: Arc::default(),
        }
    }

    /// A slot for one more connection from `ip`, unless it has `limit` open already.
    pub fn enter(&self, ip: IpAddr) -> Option<Slot> {
        let ip = ip.to_canonical();
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= self.limit {
            return None;
        }
        *n += 1;
        Some(Slot {
            ip,
            open: Arc::clone(&self.open),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// One connection in [`crate::admin::ConnStats::open`], counted out when dropped.
struct Open(Arc<crate::admin::ConnStats>);

impl Open {
    fn count(stats: &Arc<crate::admin::ConnStats>) -> Open {
        stats.open.fetch_add(1, Ordering::Relaxed);
        Open(Arc::clone(stats))
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Bind `count` listening sockets on `addr` with SO_REUSEPORT, one per worker, so the kernel
/// spreads connections over the workers (done up front so bind errors surface at start-up). With
/// port 0, the first socket picks the port and the others join it.
pub fn bind(addr: SocketAddr, count: usize) -> std::io::Result<Vec<std::net::TcpListener>> {
    let mut out = Vec::with_capacity(count);
    let mut addr = addr;
    for _ in 0..count.max(1) {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )?;
        if addr.is_ipv6() {
            socket.set_only_v6(true)?;
        }
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        socket.listen(1024)?;
        let listener: std::net::TcpListener = socket.into();
        if addr.port() == 0 {
            addr = listener.local_addr()?;
        }
        out.push(listener);
    }
    Ok(out)
}

/// Accept and serve until `shutdown` flips to true, then drain for up to `limits.grace`. Runs on
/// a worker's runtime; the listener is registered there.
pub async fn serve(
    listener: std::net::TcpListener,
    proxy: Arc<Proxy>,
    ep: Arc<EntryPoint>,
    limits: ConnLimits,
    mut shutdown: watch::Receiver<bool>,
) {
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(entrypoint = %ep.name, error = %e, "cannot register the listener");
            return;
        }
    };
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let builder = Arc::new(hyper_builder(&limits));
    let timeouts = Timeouts {
        first_bytes: limits.header_read_timeout,
        max_head: limits.max_header_bytes.max(8192),
        idle: limits.idle_timeout,
        upgraded_idle: limits.upgraded_idle_timeout,
    };
    let mut conns = JoinSet::new();
    loop {
        while conns.try_join_next().is_some() {}
        let Some((permit, stream, peer)) = accept(&listener, &permits, &mut shutdown, &ep).await
        else {
            break;
        };
        let Some(slot) = ep.per_source.enter(peer.ip()) else {
            // Closed at once: one source must not hold every connection (slowloris).
            let n = ep.stats.refused_per_ip.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::info!(entrypoint = %ep.name, %peer, total = n, "connections refused: too many from one address");
            }
            continue;
        };
        ep.stats.accepted.fetch_add(1, Ordering::Relaxed);
        let open = Open::count(&ep.stats);
        let _ = stream.set_nodelay(true);
        let (proxy, ep, builder) = (Arc::clone(&proxy), Arc::clone(&ep), Arc::clone(&builder));
        let stop = shutdown.clone();
        conns.spawn(async move {
            // The permit, the source's slot and the open count live as long as the connection,
            // upgraded or not, and are given back however its task ends.
            let _held = (permit, slot, open);
            let conn = Accepted {
                peer,
                proxy,
                ep,
                builder: &builder,
                timeouts,
                // Activity is counted, not timed: no clock read per read or write.
                moved: Arc::new(AtomicU64::new(0)),
                stop,
            };
            serve_conn(stream, conn).await;
        });
    }
    drop(listener);
    drain(conns, limits.grace, &ep).await;
}

/// hyper's server for the connections boma's own HTTP/1.1 server hands over: HTTP/1.1 with the
/// header-read timeout and head size limit, and HTTP/2.
fn hyper_builder(limits: &ConnLimits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(limits.max_header_bytes as u32)
        .max_concurrent_streams(250)
        .keep_alive_interval(None);
    builder
}

/// The next connection, with the permit it holds; `None` once shutting down. Waits for a
/// permit first: at the connection limit, new clients wait in the kernel's backlog.
async fn accept(
    listener: &TcpListener,
    permits: &Arc<Semaphore>,
    shutdown: &mut watch::Receiver<bool>,
    ep: &EntryPoint,
) -> Option<(OwnedSemaphorePermit, TcpStream, SocketAddr)> {
    let permit = tokio::select! {
        _ = shutdown.changed() => return None,
        p = Arc::clone(permits).acquire_owned() => p.ok()?,
    };
    loop {
        tokio::select! {
            _ = shutdown.changed() => return None,
            r = listener.accept() => match r {
                Ok((stream, peer)) => return Some((permit, stream, peer)),
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(entrypoint = %ep.name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
}

/// Wait for the connections (they saw the shutdown flag and are closing gracefully) for up to
/// `grace`, then close those left.
async fn drain(mut conns: JoinSet<()>, grace: Duration, ep: &EntryPoint) {
    let drained =
        tokio::time::timeout(grace, async { while conns.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::info!(entrypoint = %ep.name, left = conns.len(), "grace period over, closing connections");
        conns.shutdown().await;
    }
}
