//! boma's DHCPv4 server for the LAN: `codec` (messages on smoltcp's wire codec), `leases` (the
//! fixed-size lease table and its dnsmasq-format lines), `file` (the lease file, merged when one
//! appears that boma did not write), `probe` (the rogue-DHCP guard), `server` (the serving
//! loop); the configuration, channels, state and counters are here.
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
mod file;
pub mod leases;
mod probe;
mod server;

pub use server::{fuzz_packet, run};

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::net::UdpSocket;
use tokio::sync::watch;

use codec::Network;
use leases::Lease;

/// Packets handled before the lease file is written and the replies go out.
pub const BATCH: usize = 64;
/// Shortest time between two publications of the leases.
pub(crate) const PUBLISH_EVERY: Duration = Duration::from_millis(200);

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

pub(crate) fn bump(c: &AtomicU64) {
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

pub(crate) fn unix_now() -> u64 {
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
