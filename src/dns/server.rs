//! Sockets and loops: binds UDP and TCP on the same port of every listen address, answers UDP
//! packets inline (local names, cache hits) and forwarded questions in tasks the loop owns (at
//! most `max_in_flight`), and serves TCP clients (at most `max_tcp_connections`, each with an
//! idle timeout, its questions answered in order).
//!
//! Everything stops on the `stop` watch: the loops return and drop their task sets, which aborts
//! what is still waiting for an upstream. The query logic is in `handler.rs`; nothing here looks
//! inside a packet.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;

use super::DnsError;
use super::handler::{Resolver, Step};
use super::wire::{MAX_UDP, Transport};

/// Receive buffer asked for on UDP listeners, so a burst of queries waits in the kernel instead
/// of being dropped while the loop is busy (the kernel caps it at `net.core.rmem_max`).
const UDP_RECV_BUFFER: usize = 512 * 1024;

/// One listen address, bound for UDP and TCP on the same port.
pub struct Bound {
    pub addr: SocketAddr,
    pub udp: std::net::UdpSocket,
    pub tcp: std::net::TcpListener,
}

/// Binds every listen address (port 0: one free port shared by UDP and TCP).
pub fn bind(listen: &[SocketAddr]) -> Result<Vec<Bound>, DnsError> {
    listen.iter().map(|&addr| bind_one(addr)).collect()
}

fn bind_one(addr: SocketAddr) -> Result<Bound, DnsError> {
    let err = |source| DnsError::Bind { addr, source };
    let mut last = None;
    // With port 0 the UDP port the kernel picks may be taken for TCP: try a few.
    for _ in 0..16 {
        let udp = udp_socket(addr).map_err(err)?;
        let local = udp.local_addr().map_err(err)?;
        match tcp_listener(local) {
            Ok(tcp) => {
                return Ok(Bound {
                    addr: local,
                    udp,
                    tcp,
                });
            }
            Err(e) if addr.port() == 0 && e.kind() == std::io::ErrorKind::AddrInUse => {
                last = Some(e);
            }
            Err(e) => return Err(err(e)),
        }
    }
    Err(err(
        last.unwrap_or_else(|| std::io::Error::other("no free port"))
    ))
}

fn udp_socket(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    if let Err(e) = socket.set_recv_buffer_size(UDP_RECV_BUFFER) {
        tracing::debug!(error = %e, "DNS: cannot enlarge the UDP receive buffer");
    }
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

fn tcp_listener(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(128)?;
    Ok(socket.into())
}

/// Serve UDP until `stop`.
pub async fn serve_udp(
    socket: UdpSocket,
    resolver: Arc<Resolver>,
    mut stop: watch::Receiver<bool>,
) {
    let socket = Arc::new(socket);
    let mut forwarding: JoinSet<()> = JoinSet::new();
    let mut buf = vec![0u8; MAX_UDP];
    loop {
        let received = tokio::select! {
            r = socket.recv_from(&mut buf) => r,
            _ = stop.changed() => break,
        };
        let (n, client) = match received {
            Ok(r) => r,
            Err(e) => {
                // ICMP errors surface here on some systems; anything else: do not spin.
                tracing::debug!(error = %e, "DNS: UDP receive failed");
                if !matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::ConnectionReset
                ) {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                continue;
            }
        };
        let packet = buf.get(..n).unwrap_or_default();
        match resolver.handle(packet, client, Transport::Udp, Instant::now()) {
            Step::Drop => {}
            Step::Reply(bytes) => send(&socket, &bytes, client).await,
            Step::Forward(pending) => match resolver.try_begin() {
                Some(permit) => {
                    let (socket, resolver) = (Arc::clone(&socket), Arc::clone(&resolver));
                    forwarding.spawn(async move {
                        let bytes = resolver.forward(pending).await;
                        drop(permit);
                        send(&socket, &bytes, client).await;
                    });
                }
                None => send(&socket, &resolver.overloaded(pending), client).await,
            },
        }
        while forwarding.try_join_next().is_some() {}
    }
}

async fn send(socket: &UdpSocket, bytes: &[u8], to: SocketAddr) {
    if bytes.is_empty() {
        return;
    }
    if let Err(e) = socket.send_to(bytes, to).await {
        tracing::debug!(error = %e, %to, "DNS: UDP send failed");
    }
}

/// Serve TCP until `stop`.
pub async fn serve_tcp(
    listener: TcpListener,
    resolver: Arc<Resolver>,
    max_connections: usize,
    idle: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(max_connections.max(1)));
    let mut connections: JoinSet<()> = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = stop.changed() => break,
        };
        let (stream, client) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::debug!(error = %e, "DNS: TCP accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            let n = resolver
                .stats
                .tcp_rejected
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if (n + 1).is_power_of_two() {
                tracing::warn!(
                    total = n + 1,
                    "DNS: TCP connection limit reached (max_tcp_connections)"
                );
            }
            drop(stream);
            continue;
        };
        let resolver = Arc::clone(&resolver);
        let stop = stop.clone();
        connections.spawn(async move {
            connection(stream, client, resolver, idle, slot, stop).await;
        });
        while connections.try_join_next().is_some() {}
    }
}

/// One TCP client: length-prefixed questions, answered in order, until idle, error or stop.
async fn connection(
    mut stream: TcpStream,
    client: SocketAddr,
    resolver: Arc<Resolver>,
    idle: Duration,
    _slot: OwnedSemaphorePermit,
    mut stop: watch::Receiver<bool>,
) {
    let mut buf = Vec::new();
    loop {
        let len = tokio::select! {
            r = tokio::time::timeout(idle, stream.read_u16()) => match r {
                Ok(Ok(len)) => usize::from(len),
                _ => return,
            },
            _ = stop.changed() => return,
        };
        buf.resize(len, 0);
        match tokio::time::timeout(idle, stream.read_exact(&mut buf)).await {
            Ok(Ok(_)) => {}
            _ => return,
        }
        let bytes = match resolver.handle(&buf, client, Transport::Tcp, Instant::now()) {
            Step::Drop => return,
            Step::Reply(bytes) => bytes,
            Step::Forward(pending) => match resolver.try_begin() {
                Some(permit) => {
                    let bytes = tokio::select! {
                        b = resolver.forward(pending) => b,
                        _ = stop.changed() => return,
                    };
                    drop(permit);
                    bytes
                }
                None => resolver.overloaded(pending),
            },
        };
        let Ok(len) = u16::try_from(bytes.len()) else {
            return;
        };
        let mut framed = Vec::with_capacity(bytes.len() + 2);
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(&bytes);
        match tokio::time::timeout(idle, stream.write_all(&framed)).await {
            Ok(Ok(())) => {}
            _ => return,
        }
    }
}
