//! One accepted connection, from its first byte to its end: TLS or not (as the first byte
//! says, with the SNI's options), then boma's own HTTP/1.1 server, hyper for what that one hands
//! over, and the splice of an upgraded (WebSocket) connection, each under its timeouts and the
//! entrypoint's drain.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::activity::{Activity, IdleWatch};
use super::h1;
use crate::proxy::{Conn, EntryPoint, Proxy};

/// Longest wait for hyper to hand over both sides of a protocol switch.
const HAND_OVER: Duration = Duration::from_secs(10);

/// The time limits of one connection.
#[derive(Clone, Copy)]
pub(super) struct Timeouts {
    /// For the first byte and, over TLS, the whole handshake; then for each request head.
    pub first_bytes: Duration,
    /// Longest request head (hyper answers 431 beyond it).
    pub max_head: usize,
    pub idle: Duration,
    pub upgraded_idle: Duration,
}

/// One accepted connection and what serving it takes.
pub(super) struct Accepted<'a> {
    pub peer: SocketAddr,
    pub proxy: Arc<Proxy>,
    pub ep: Arc<EntryPoint>,
    pub builder: &'a auto::Builder<TokioExecutor>,
    pub timeouts: Timeouts,
    /// Bumped by every read or write that moves bytes (the idle timeouts).
    pub moved: Arc<AtomicU64>,
    pub stop: watch::Receiver<bool>,
}

/// Serve one connection: plain or over TLS, as its first byte says.
pub(super) async fn serve_conn(stream: TcpStream, conn: Accepted<'_>) {
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
    let idle = IdleWatch::new(timeouts.idle, &moved);
    let served = Served {
        proxy,
        ep,
        conn: Arc::clone(&conn_info),
    };
    if !serve_hyper(io, served, builder, idle, &mut stop).await {
        return;
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

/// What hyper's service answers with: the proxy, the entrypoint and the connection's record.
struct Served {
    proxy: Arc<Proxy>,
    ep: Arc<EntryPoint>,
    conn: Arc<Conn>,
}

/// The rest of a connection boma's own server handed over, served by hyper until it closes,
/// idles or is drained (gracefully: a request being answered finishes first). False when it
/// was drained as it began: no upgrade follows then.
async fn serve_hyper<I>(
    io: h1::Rewind<I>,
    served: Served,
    builder: &auto::Builder<TokioExecutor>,
    mut idle_watch: IdleWatch,
    stop: &mut watch::Receiver<bool>,
) -> bool
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(io);
    let Served {
        proxy,
        ep,
        conn: in_service,
    } = served;
    let peer = in_service.peer;
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
            return false;
        }
        conn.as_mut().graceful_shutdown();
    }
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
    true
}

/// Copy both ways between the upgraded client and server connections until either closes,
/// nothing moves for a whole idle period, or the entrypoint drains (an upgraded connection has
/// no request boundary to finish at, so it is closed at once and the client reconnects).
async fn splice(
    upgrade: crate::proxy::forward::Upgrade,
    peer: SocketAddr,
    mut idle_watch: IdleWatch,
    mut stop: watch::Receiver<bool>,
) {
    // Both sides are handed over as soon as the 101 is through (hyper's connection is gone by
    // now: a switch it never completed fails here at once); the bound is for a server
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
