//! boma's DHCPv4 server for the LAN: `codec` (messages on smoltcp's wire codec), `leases` (the
//! fixed-size lease table and its dnsmasq-format file), `probe` (the rogue-DHCP guard) and the
//! serving loop here.
//!
//! The loop reads what the LAN interface's socket holds (a burst at most [`BATCH`] packets),
//! answers each from the table, writes the lease file once for the whole burst when a lease
//! changed (temp file, fsync, rename: `crate::store`) and only then sends the ACKs: an
//! acknowledged lease is on disk (group commit, so a storm costs one write per burst, not one
//! per client). Current leases are published on a watch channel; the DHCP provider turns them
//! into names for the local zone. Malformed packets are dropped and counted, never answered.
//!
//! Replies go where RFC 2131 §4.1 says, except one case: to a client without an address that did
//! not ask for broadcast, the reply is broadcast rather than unicast to an address the client
//! does not have yet (that needs a hand-made ARP entry or a raw socket; every client accepts
//! the broadcast, as dnsmasq's fallback does). This module never touches interfaces, addresses
//! or firewall rules.

pub mod codec;
pub mod leases;
mod probe;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::net::UdpSocket;
use tokio::sync::watch;

use codec::{Message, MessageType, Network, Reply};
use leases::{Lease, Request, Table, Verdict};

/// Packets handled before the lease file is written and the replies go out.
pub const BATCH: usize = 64;
/// Shortest time between two publications of the leases.
const PUBLISH_EVERY: Duration = Duration::from_millis(200);

/// Everything the server needs, from `[lan]` and `[dhcp]`.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub interface: String,
    pub network: Network,
    pub pool: (Ipv4Addr, Ipv4Addr),
    pub fixed: Vec<leases::Fixed>,
    pub times: leases::Times,
    pub authoritative: bool,
    pub lease_file: PathBuf,
    /// Probe for other servers before serving and then at this interval; `None`: never.
    pub rogue_check: Option<Duration>,
}

/// Counters, shown by the API.
#[derive(Debug, Default, Serialize)]
pub struct Stats {
    pub received: AtomicU64,
    pub malformed: AtomicU64,
    pub offers: AtomicU64,
    pub acks: AtomicU64,
    pub naks: AtomicU64,
    pub declines: AtomicU64,
    pub releases: AtomicU64,
    pub informs: AtomicU64,
    pub ignored: AtomicU64,
    pub exhausted: AtomicU64,
    pub write_errors: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// What the server is doing, for the API, the dashboard and the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum State {
    Starting,
    Serving,
    /// Another DHCP server answers on the LAN: boma does not serve until it is gone.
    Refused {
        other: Ipv4Addr,
    },
    Failed {
        error: String,
    },
}

/// Where the server publishes what it does; cheap to clone.
#[derive(Clone, Debug)]
pub struct Handle {
    pub stats: Arc<Stats>,
    pub state: watch::Receiver<State>,
    pub leases: watch::Receiver<Arc<Vec<Lease>>>,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The server's channels, made before it starts so that consumers can subscribe first.
pub struct Channels {
    state: watch::Sender<State>,
    leases: watch::Sender<Arc<Vec<Lease>>>,
    stats: Arc<Stats>,
}

impl Channels {
    pub fn new() -> (Channels, Handle) {
        let (state, state_rx) = watch::channel(State::Starting);
        let (leases, leases_rx) = watch::channel(Arc::new(Vec::new()));
        let stats = Arc::new(Stats::default());
        let handle = Handle {
            stats: Arc::clone(&stats),
            state: state_rx,
            leases: leases_rx,
        };
        (
            Channels {
                state,
                leases,
                stats,
            },
            handle,
        )
    }
}

/// Restore the table from the lease file (a missing file is an empty table).
fn restored_table(cfg: &ServerConfig) -> Table {
    let mut table = Table::new(
        cfg.pool.0,
        cfg.pool.1,
        cfg.network.server_id,
        cfg.fixed.clone(),
        cfg.times,
    );
    match std::fs::read_to_string(&cfg.lease_file) {
        Ok(text) => {
            let (restored, skipped) = table.restore(&text);
            tracing::info!(file = %cfg.lease_file.display(), restored, skipped, "dhcp: leases restored");
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!(file = %cfg.lease_file.display(), error = %e, "dhcp: cannot read the lease file; starting empty");
        }
    }
    table
}

/// The DHCP ports (RFC 2131).
pub const SERVER_PORT: u16 = 67;
pub const CLIENT_PORT: u16 = 68;

/// A UDP socket on `port` of `interface` only, broadcast allowed: the server's (67) and the
/// rogue probe's (68).
pub(super) fn bind(interface: &str, port: u16) -> std::io::Result<UdpSocket> {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)?;
    sock.set_reuse_address(true)?;
    sock.set_broadcast(true)?;
    sock.bind_device(Some(interface.as_bytes()))?;
    sock.set_nonblocking(true)?;
    sock.bind(&SocketAddr::from(([0, 0, 0, 0], port)).into())?;
    UdpSocket::from_std(sock.into())
}

/// Run the server until `stop`: restore leases, wait until no other server answers, serve.
pub async fn run(cfg: ServerConfig, ch: Channels, mut stop: watch::Receiver<bool>) {
    let mut server = Server {
        table: restored_table(&cfg),
        cfg,
        ch,
        dirty: false,
    };
    server.publish(unix_now());
    let Some(sock) = bind_when_ready(&server, &mut stop).await else {
        return;
    };
    let (guard_tx, mut guard) = watch::channel(None::<Ipv4Addr>);
    let probe_task = server.cfg.rogue_check.map(|every| {
        tokio::spawn(probe::guard(
            server.cfg.interface.clone(),
            server.cfg.network.server_id,
            every,
            guard_tx,
            stop.clone(),
        ))
    });
    if probe_task.is_some() {
        // Serve only once the first probe is done.
        tokio::select! {
            _ = guard.changed() => {}
            _ = stop.changed() => return,
        }
    }
    server.serve(&sock, &mut guard, &mut stop).await;
    if let Some(t) = probe_task {
        t.abort();
    }
}

/// The server's socket, retried (the LAN interface may not exist yet: a USB adapter, a bridge
/// the set-up is still retrying) with the failure shown as the server's state; `None` on stop.
async fn bind_when_ready(server: &Server, stop: &mut watch::Receiver<bool>) -> Option<UdpSocket> {
    let mut pause = Duration::from_secs(1);
    loop {
        match bind(&server.cfg.interface, SERVER_PORT) {
            Ok(sock) => return Some(sock),
            Err(e) => {
                let error = format!(
                    "cannot listen on {} port {SERVER_PORT} (retrying): {e}",
                    server.cfg.interface
                );
                let state = State::Failed { error };
                if *server.ch.state.borrow() != state {
                    tracing::warn!("dhcp: {state:?}");
                    server.ch.state.send_replace(state);
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.changed() => return None,
        }
        pause = (pause * 2).min(Duration::from_secs(10));
    }
}

struct Server {
    cfg: ServerConfig,
    table: Table,
    ch: Channels,
    /// A lease changed since the file was last written.
    dirty: bool,
}

impl Server {
    async fn serve(
        &mut self,
        sock: &UdpSocket,
        guard: &mut watch::Receiver<Option<Ipv4Addr>>,
        stop: &mut watch::Receiver<bool>,
    ) {
        let mut buf = vec![0u8; 1500];
        let mut pending: Vec<(Vec<u8>, SocketAddr)> = Vec::with_capacity(BATCH);
        let mut sweep = tokio::time::interval(Duration::from_secs(30));
        // Leases go out at most every PUBLISH_EVERY: the first change at once, a storm's
        // changes together at the end of the period.
        let mut last_publish = tokio::time::Instant::now();
        let mut publish_at: Option<tokio::time::Instant> = None;
        self.set_state(*guard.borrow_and_update());
        loop {
            let first = tokio::select! {
                r = sock.recv_from(&mut buf) => r,
                r = guard.changed() => {
                    if r.is_ok() { self.set_state(*guard.borrow_and_update()); }
                    continue;
                }
                _ = sweep.tick() => { self.publish(unix_now()); continue; }
                Some(()) = async { match publish_at {
                    Some(at) => { tokio::time::sleep_until(at).await; Some(()) }
                    None => None,
                } } => {
                    self.publish(unix_now());
                    (last_publish, publish_at) = (tokio::time::Instant::now(), None);
                    continue;
                }
                _ = stop.changed() => return,
            };
            let refused = guard.borrow().is_some();
            let now = unix_now();
            let mut next = first;
            // At most BATCH packets per burst, answered or not: a flood of garbage cannot keep
            // the loop from writing and sending.
            for handled in 1..=BATCH {
                if let Ok((n, from)) = next {
                    bump(&self.ch.stats.received);
                    if !refused && let Some(reply) = self.handle(&buf[..n], from, now) {
                        pending.push(reply);
                    }
                }
                if handled == BATCH {
                    break;
                }
                next = match sock.try_recv_from(&mut buf) {
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    r => r,
                };
            }
            let changed = self.commit().await;
            for (bytes, to) in pending.drain(..) {
                if let Err(e) = sock.send_to(&bytes, to).await {
                    tracing::debug!(error = %e, %to, "dhcp: send failed");
                }
            }
            // Leases change only with a commit (expiries: the sweep), never with an offer.
            if changed && publish_at.is_none() {
                if last_publish.elapsed() >= PUBLISH_EVERY {
                    self.publish(now);
                    last_publish = tokio::time::Instant::now();
                } else {
                    publish_at = Some(last_publish + PUBLISH_EVERY);
                }
            }
        }
    }

    fn set_state(&self, other: Option<Ipv4Addr>) {
        let state = match other {
            Some(other) => State::Refused { other },
            None => State::Serving,
        };
        let changed = self.ch.state.send_if_modified(|s| {
            let changed = *s != state;
            *s = state.clone();
            changed
        });
        if changed {
            match state {
                State::Refused { other } => tracing::error!(
                    interface = %self.cfg.interface, %other,
                    "dhcp: another DHCP server answers on the LAN; not serving while it does"
                ),
                _ => tracing::info!(interface = %self.cfg.interface, "dhcp: serving"),
            }
        }
    }

    /// Write the lease file when a lease changed (before any ACK of the burst goes out);
    /// returns whether one did.
    async fn commit(&mut self) -> bool {
        if !self.dirty {
            return false;
        }
        self.dirty = false;
        let text = self.table.to_file();
        let path = self.cfg.lease_file.clone();
        let written = tokio::task::spawn_blocking(move || {
            if let Some(dir) = path.parent() {
                crate::store::ensure_dir(dir)?;
            }
            crate::store::write_durably(&path, text.as_bytes())
        })
        .await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                bump(&self.ch.stats.write_errors);
                tracing::error!(file = %self.cfg.lease_file.display(), error = %e, "dhcp: cannot write the lease file");
            }
            Err(e) => tracing::error!(error = %e, "dhcp: lease writer failed"),
        }
        true
    }

    fn publish(&self, now: u64) {
        let active = self.table.active(now);
        self.ch.leases.send_if_modified(|cur| {
            if **cur == active {
                false
            } else {
                *cur = Arc::new(active);
                true
            }
        });
    }

    /// One packet in, at most one reply out (bytes and destination).
    fn handle(
        &mut self,
        packet: &[u8],
        from: SocketAddr,
        now: u64,
    ) -> Option<(Vec<u8>, SocketAddr)> {
        let msg = match codec::parse(packet) {
            Ok(m) => m,
            Err(e) => {
                bump(&self.ch.stats.malformed);
                tracing::debug!(%from, error = %e, "dhcp: malformed packet dropped");
                return None;
            }
        };
        if probe::is_probe(&msg.chaddr) {
            return None;
        }
        let key = leases::key(msg.chaddr, msg.client_id);
        let net = &self.cfg.network;
        let lease = u32::try_from(self.cfg.times.lease).unwrap_or(u32::MAX);
        let stats = &self.ch.stats;
        let mut reply = Reply {
            kind: MessageType::Ack,
            to: &msg,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            lease: None,
            hostname: None,
            message: None,
        };
        let hostname;
        match msg.kind {
            MessageType::Discover => {
                let Some(ip) = self.table.offer(msg.chaddr, &key, msg.requested_ip, now) else {
                    bump(&stats.exhausted);
                    tracing::warn!(mac = %leases::mac_string(&msg.chaddr), "dhcp: no free address to offer");
                    return None;
                };
                bump(&stats.offers);
                reply.kind = MessageType::Offer;
                reply.yiaddr = ip;
                reply.lease = Some(lease);
            }
            MessageType::Request => {
                if msg.server_id.is_some_and(|id| id != net.server_id) {
                    // The client took another server's offer.
                    bump(&stats.ignored);
                    return None;
                }
                let ip = msg.requested_ip.unwrap_or(msg.ciaddr);
                let req = Request {
                    mac: msg.chaddr,
                    key: &key,
                    client_id: msg.client_id,
                    ip,
                    hostname: msg.host_label(),
                    selecting: msg.server_id.is_some(),
                    authoritative: self.cfg.authoritative,
                };
                match self.table.request(req, now) {
                    Verdict::Ack(l) => {
                        self.dirty = true;
                        bump(&stats.acks);
                        tracing::info!(ip = %l.addr, mac = %leases::mac_string(&l.mac), name = %l.hostname, "dhcp: lease");
                        reply.yiaddr = l.addr;
                        reply.ciaddr = msg.ciaddr;
                        reply.lease = Some(lease);
                        hostname = self.fixed_name(msg.chaddr);
                        reply.hostname = hostname.as_deref();
                    }
                    Verdict::Nak => {
                        bump(&stats.naks);
                        reply.kind = MessageType::Nak;
                        reply.message = Some("address not available");
                    }
                    Verdict::Ignore => {
                        bump(&stats.ignored);
                        return None;
                    }
                }
            }
            MessageType::Decline => {
                bump(&stats.declines);
                if let Some(ip) = msg
                    .requested_ip
                    .filter(|_| msg.server_id == Some(net.server_id))
                {
                    tracing::warn!(%ip, mac = %leases::mac_string(&msg.chaddr), "dhcp: address declined (in use); kept out of the pool");
                    self.dirty |= self.table.decline(&key, ip, now);
                }
                return None;
            }
            MessageType::Release => {
                bump(&stats.releases);
                self.dirty |= self.table.release(&key, msg.ciaddr, now);
                return None;
            }
            MessageType::Inform => {
                bump(&stats.informs);
                reply.ciaddr = msg.ciaddr;
            }
            _ => return None,
        }
        let mut out = vec![0u8; codec::MAX_REPLY];
        let len = codec::emit(&reply, net, &mut out).ok()?;
        out.truncate(len);
        Some((out, destination(&msg, &reply)))
    }

    fn fixed_name(&self, mac: [u8; 6]) -> Option<String> {
        self.cfg.fixed.iter().find(|f| f.mac == mac)?.name.clone()
    }
}

/// Where a reply goes (RFC 2131 §4.1, with the broadcast fallback the module docs explain).
fn destination(msg: &Message<'_>, reply: &Reply<'_>) -> SocketAddr {
    let to = if !msg.giaddr.is_unspecified() {
        SocketAddrV4::new(msg.giaddr, SERVER_PORT)
    } else if reply.kind == MessageType::Nak {
        SocketAddrV4::new(Ipv4Addr::BROADCAST, CLIENT_PORT)
    } else if !msg.ciaddr.is_unspecified() {
        SocketAddrV4::new(msg.ciaddr, CLIENT_PORT)
    } else {
        SocketAddrV4::new(Ipv4Addr::BROADCAST, CLIENT_PORT)
    };
    SocketAddr::V4(to)
}

impl ServerConfig {
    /// The server `[lan]` and `[dhcp]` describe; `None` without both. The domain defaults to
    /// the `[dns]` zone, and router and DNS server are the gateway's LAN address.
    pub fn from_config(cfg: &crate::config::Config) -> Option<ServerConfig> {
        let (lan, dhcp) = (cfg.lan.as_ref()?, cfg.dhcp.as_ref()?);
        let net = lan.address;
        let domain = (dhcp.domain.clone())
            .or_else(|| cfg.dns.as_ref().map(|d| d.zone.clone()))
            .unwrap_or_default();
        let fixed = (dhcp.hosts.iter())
            .filter_map(|h| {
                Some(leases::Fixed {
                    mac: h.mac_bytes()?,
                    addr: h.address,
                    name: h.name.clone(),
                })
            })
            .collect();
        let secs = |d: crate::config::Duration| d.to_std().as_secs();
        Some(ServerConfig {
            interface: lan.interface.clone(),
            network: Network {
                server_id: net.addr,
                subnet_mask: net.mask(),
                router: net.addr,
                dns: net.addr,
                broadcast: net.broadcast(),
                domain,
            },
            pool: dhcp.pool(&net),
            fixed,
            times: leases::Times {
                lease: secs(dhcp.lease_time),
                offer_hold: 60,
                decline: secs(dhcp.decline_time),
            },
            authoritative: dhcp.authoritative,
            lease_file: dhcp.state_dir.join("leases"),
            rogue_check: dhcp.rogue_check.then(|| dhcp.rogue_check_interval.to_std()),
        })
    }
}

/// For the fuzz target and the malformed-packet tests: run one packet through the parser and a
/// server with a small pool (OFFER/ACK/NAK emitted and read back). Panics on a broken invariant.
#[doc(hidden)]
pub fn fuzz_packet(packet: &[u8]) {
    let cfg = ServerConfig {
        interface: "lan0".into(),
        network: Network::example(),
        pool: (Ipv4Addr::new(10, 9, 0, 100), Ipv4Addr::new(10, 9, 0, 101)),
        fixed: Vec::new(),
        times: leases::Times {
            lease: 3600,
            offer_hold: 60,
            decline: 600,
        },
        authoritative: true,
        lease_file: PathBuf::from("/nonexistent/leases"),
        rogue_check: None,
    };
    let (ch, _handle) = Channels::new();
    let table = Table::new(
        cfg.pool.0,
        cfg.pool.1,
        cfg.network.server_id,
        Vec::new(),
        cfg.times,
    );
    let mut server = Server {
        cfg,
        table,
        ch,
        dirty: false,
    };
    let from = SocketAddr::from(([10, 9, 0, 100], 68));
    for now in [1_000, 1_000, 5_000] {
        if let Some((bytes, _)) = server.handle(packet, from, now) {
            assert!(
                (300..=codec::MAX_REPLY).contains(&bytes.len()),
                "reply size"
            );
            let parsed = smoltcp::wire::DhcpPacket::new_checked(&bytes[..])
                .ok()
                .and_then(|p| {
                    smoltcp::wire::DhcpRepr::parse(&p)
                        .ok()
                        .map(|r| r.message_type)
                });
            assert!(parsed.is_some(), "a reply smoltcp cannot parse");
        }
    }
}

#[cfg(test)]
mod fuzz_tests {
    /// The fuzz target's invariants on hand-picked inputs: garbage, a valid DISCOVER, and every
    /// prefix of it.
    #[test]
    fn fuzz_invariants_hold_on_fixtures() {
        let mut discover = vec![0u8; 240];
        discover[..3].copy_from_slice(&[1, 1, 6]);
        discover[28..34].copy_from_slice(&[0x52, 0x54, 0, 0, 0, 1]);
        discover[236..240].copy_from_slice(&[99, 130, 83, 99]);
        discover.extend_from_slice(&[53, 1, 1, 61, 3, 0, 1, 2, 81, 4, 4, 0, 0, 0, 255]);
        for end in 0..=discover.len() {
            super::fuzz_packet(&discover[..end]);
        }
        super::fuzz_packet(&[0xff; 600]);
        let mut request = discover.clone();
        request[242] = 3;
        super::fuzz_packet(&request);
    }
}
