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

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use super::{Conn, EntryPoint, Proxy};

mod h1;

/// Longest wait for hyper to hand over both sides of a protocol switch.
const HAND_OVER: Duration = Duration::from_secs(10);

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
    let builder = Arc::new(builder);
    let mut conns = JoinSet::new();
    loop {
        while conns.try_join_next().is_some() {}
        let permit = tokio::select! {
            _ = shutdown.changed() => break,
            p = Arc::clone(&permits).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            _ = shutdown.changed() => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(entrypoint = %ep.name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
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
        let proxy = Arc::clone(&proxy);
        let ep = Arc::clone(&ep);
        let builder = Arc::clone(&builder);
        let stop = shutdown.clone();
        let timeouts = Timeouts {
            first_bytes: limits.header_read_timeout,
            max_head: limits.max_header_bytes.max(8192),
            idle: limits.idle_timeout,
            upgraded_idle: limits.upgraded_idle_timeout,
        };
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
    // Drain: connections saw the shutdown flag and are closing gracefully.
    let drained = tokio::time::timeout(limits.grace, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::info!(entrypoint = %ep.name, left = conns.len(), "grace period over, closing connections");
        conns.shutdown().await;
    }
}

/// The time limits of one connection.
#[derive(Clone, Copy)]
struct Timeouts {
    /// For the first byte and, over TLS, the whole handshake; then for each request head.
    first_bytes: Duration,
    /// Longest request head (hyper answers 431 beyond it).
    max_head: usize,
    idle: Duration,
    upgraded_idle: Duration,
}

/// One accepted connection and what serving it takes.
struct Accepted<'a> {
    peer: SocketAddr,
    proxy: Arc<Proxy>,
    ep: Arc<EntryPoint>,
    builder: &'a auto::Builder<TokioExecutor>,
    timeouts: Timeouts,
    /// Bumped by every read or write that moves bytes (the idle timeouts).
    moved: Arc<AtomicU64>,
    stop: watch::Receiver<bool>,
}

/// Serve one connection: plain or over TLS, as its first byte says.
async fn serve_conn(stream: TcpStream, conn: Accepted<'_>) {
    let mut first = [0u8; 1];
    // One deadline for the first byte and the whole handshake: a slow client gets one
    // header-read timeout for both, not one each.
    let deadline = tokio::time::Instant::now() + conn.timeouts.first_bytes;
    let tls = match tokio::time::timeout_at(deadline, stream.peek(&mut first)).await {
        Ok(Ok(1)) => first[0] == TLS_HANDSHAKE,
        // Closed, failed or silent for the whole header-read timeout.
        _ => return,
    };
    let io = Activity {
        inner: stream,
        moved: Arc::clone(&conn.moved),
    };
    if !tls {
        return serve_http(io, None, conn).await;
    }
    // Boxed: the TLS state (rustls's connection, the handshake) is not carried in every plain
    // connection's task.
    Box::pin(serve_tls(io, deadline, conn)).await;
}

/// The TLS handshake within the header-read `deadline`, then HTTP over it.
async fn serve_tls(io: Activity, deadline: tokio::time::Instant, conn: Accepted<'_>) {
    let (peer, stats) = (conn.peer, &conn.ep.stats);
    match tokio::time::timeout_at(deadline, handshake(io, &conn.proxy, &conn.ep.name)).await {
        Ok(Ok((tls, options))) => serve_http(tls, Some(options), conn).await,
        Ok(Err(e)) => {
            stats.tls_failed.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
        }
        Err(_) => {
            stats.tls_failed.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%peer, "TLS handshake not finished in time");
        }
    }
}

/// The first byte of a TLS record carrying a handshake (the ClientHello).
const TLS_HANDSHAKE: u8 = 0x16;

/// The server side of a TLS handshake: the ClientHello's SNI picks the option set from the
/// current snapshot, rustls then the certificate. Also returns the option set's name.
async fn handshake(
    io: Activity,
    proxy: &Proxy,
    ep: &str,
) -> std::io::Result<(tokio_rustls::server::TlsStream<Activity>, Box<str>)> {
    let acceptor = tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), io);
    let start = acceptor.await?;
    let setup = Arc::clone(&proxy.snapshot.load().tls);
    let Some((config, options)) = setup.config_for(ep, start.client_hello().server_name()) else {
        return Err(std::io::Error::other(
            "refused: the TLS options of this host did not compile or do not exist",
        ));
    };
    let options: Box<str> = options.into();
    Ok((start.into_stream(config).await?, options))
}

/// Serve HTTP on one connection until it closes, goes idle or is drained; then, when a request
/// switched protocols, the upgraded connection until either side closes, it idles or drain.
async fn serve_http<I>(io: I, tls: Option<Box<str>>, conn: Accepted<'_>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Accepted {
        peer,
        proxy,
        ep,
        builder,
        timeouts,
        moved,
        mut stop,
    } = conn;
    let conn_info = Arc::new(Conn::new(peer, tls));
    // boma's own server first; hyper takes the connection over for what it does not serve.
    let session = h1::Session {
        proxy: &proxy,
        ep: &ep,
        conn: &conn_info,
        head_timeout: timeouts.first_bytes,
        max_head: timeouts.max_head,
        idle: IdleWatch::new(timeouts.idle, &moved),
        stop: &mut stop,
    };
    let Some(io) = h1::serve(io, session).await else {
        return;
    };
    let io = TokioIo::new(io);
    let in_service = Arc::clone(&conn_info);
    let svc = service_fn(move |req: http::Request<Incoming>| {
        let proxy = Arc::clone(&proxy);
        let ep = Arc::clone(&ep);
        let conn_info = Arc::clone(&in_service);
        async move { Ok::<_, Infallible>(proxy.handle(&ep, &conn_info, req).await) }
    });
    let conn = builder.serve_connection_with_upgrades(io, svc);
    tokio::pin!(conn);
    let mut closing = *stop.borrow();
    if closing {
        // Draining already: hyper first reads the request put back in front of the connection
        // (shut down while it still detects the protocol, it would drop that request
        // unanswered), then answers it and closes.
        let first = std::future::poll_fn(|cx| Poll::Ready(conn.as_mut().poll(cx))).await;
        if let Poll::Ready(res) = first {
            if let Err(e) = res {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            return;
        }
        conn.as_mut().graceful_shutdown();
    }
    let mut idle_watch = IdleWatch::new(timeouts.idle, &moved);
    loop {
        tokio::select! {
            res = conn.as_mut() => {
                if let Err(e) = res {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                break;
            }
            changed = stop.changed(), if !closing => {
                if changed.is_err() || *stop.borrow() {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
            _ = idle_watch.tick(), if !closing => {
                if idle_watch.quiet() {
                    // Graceful: a request still being answered finishes first.
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
    if let Some(upgrade) = conn_info.take_upgrade() {
        // Boxed: only upgraded connections carry the copy's state.
        Box::pin(splice(
            upgrade,
            peer,
            IdleWatch::new(timeouts.upgraded_idle, &moved),
            stop,
        ))
        .await;
    }
}

/// Copy both ways between the upgraded client and server connections until either closes,
/// nothing moves for a whole idle period, or the entrypoint drains (an upgraded connection has
/// no request boundary to finish at, so it is closed at once and the client reconnects).
async fn splice(
    upgrade: super::forward::Upgrade,
    peer: SocketAddr,
    mut idle_watch: IdleWatch,
    mut stop: watch::Receiver<bool>,
) {
    // Both sides are handed over as soon as the 101 is through; the bound is for a server
    // connection that dies in between.
    let both = async { tokio::join!(upgrade.client, upgrade.upstream.ready()) };
    let (client, upstream) = match tokio::time::timeout(HAND_OVER, both).await {
        Ok((Ok(c), Ok(u))) => (c, u),
        Ok((c, u)) => {
            tracing::debug!(%peer, client = c.is_ok(), upstream = u.is_ok(), "upgrade failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "upgrade not handed over in time");
            return;
        }
    };
    let mut client = TokioIo::new(client);
    let mut upstream = upstream;
    let copy = tokio::io::copy_bidirectional(&mut client, &mut upstream);
    tokio::pin!(copy);
    if *stop.borrow() {
        return;
    }
    loop {
        tokio::select! {
            res = copy.as_mut() => {
                if let Err(e) = res {
                    tracing::debug!(%peer, error = %e, "upgraded connection ended");
                }
                return;
            }
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    tracing::debug!(%peer, "draining: upgraded connection closed");
                    return;
                }
            }
            _ = idle_watch.tick() => {
                if idle_watch.quiet() {
                    tracing::debug!(%peer, "upgraded connection idle: closed");
                    return;
                }
            }
        }
    }
}

/// The idle timeout as a tick: a connection is idle when no read or write moved a byte during
/// one whole period (so a busy connection costs one atomic add per I/O, no clock read).
struct IdleWatch {
    period: Option<Duration>,
    moved: Arc<AtomicU64>,
    seen: u64,
}

impl IdleWatch {
    /// `period` zero: never idle.
    fn new(period: Duration, moved: &Arc<AtomicU64>) -> Self {
        IdleWatch {
            period: (!period.is_zero()).then_some(period),
            moved: Arc::clone(moved),
            seen: moved.load(Ordering::Relaxed),
        }
    }

    fn period(&self) -> Option<Duration> {
        self.period
    }

    async fn tick(&self) {
        match self.period {
            Some(p) => tokio::time::sleep(p).await,
            None => std::future::pending().await,
        }
    }

    /// Nothing moved since the previous call (or since creation).
    fn quiet(&mut self) -> bool {
        let now = self.moved.load(Ordering::Relaxed);
        let quiet = now == self.seen;
        self.seen = now;
        quiet
    }
}

pin_project_lite::pin_project! {
    /// A socket that counts the reads and writes that moved bytes (for the idle timeout).
    struct Activity {
        #[pin]
        inner: TcpStream,
        moved: Arc<AtomicU64>,
    }
}

impl Activity {
    fn touch(moved: &AtomicU64) {
        moved.fetch_add(1, Ordering::Relaxed);
    }
}

impl AsyncRead for Activity {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let res = this.inner.poll_read(cx, buf);
        if buf.filled().len() > before {
            Activity::touch(this.moved);
        }
        res
    }
}

impl AsyncWrite for Activity {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.project();
        let res = this.inner.poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &res
            && *n > 0
        {
            Activity::touch(this.moved);
        }
        res
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.project();
        let res = this.inner.poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = &res
            && *n > 0
        {
            Activity::touch(this.moved);
        }
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}
