//! The rogue-DHCP guard (beyond dnsmasq): before boma serves a LAN, and then at an interval, it
//! sends a DISCOVER of its own on the LAN interface and listens four seconds for OFFERs from
//! servers other than itself. While one answers, the server does not serve, so a box plugged
//! into the wrong port never takes over an existing network.
//!
//! The probe's MAC is a fixed locally administered prefix (`02:62:6f:6d:61:xx`, "boma") that
//! boma's own server ignores, so the probe never takes an address from boma's pool. This module
//! only sends probes and reports what answered; the server decides what to do.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::sync::watch;

use super::{CLIENT_PORT, SERVER_PORT, bind, codec};

const PROBE_PREFIX: [u8; 5] = [0x02, 0x62, 0x6f, 0x6d, 0x61];
/// How long one probe listens for offers: dnsmasq pings an address (up to 3 s) before it offers
/// it the first time, so a shorter window misses it on its first probe.
const LISTEN: Duration = Duration::from_secs(4);

/// Whether a client hardware address is boma's probe.
pub fn is_probe(mac: &[u8; 6]) -> bool {
    mac[..5] == PROBE_PREFIX
}

fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    u32::from_be_bytes(b)
}

/// One probe: the first server other than `own` that offers, if any.
pub async fn probe_once(interface: &str, own: Ipv4Addr) -> std::io::Result<Option<Ipv4Addr>> {
    let sock = bind(interface, CLIENT_PORT)?;
    let xid = random_u32();
    let mut mac = [0u8; 6];
    mac[..5].copy_from_slice(&PROBE_PREFIX);
    mac[5] = xid.to_be_bytes()[0];
    let mut buf = vec![0u8; codec::MAX_REPLY];
    let len = codec::discover_probe(xid, mac, &mut buf)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let to = SocketAddr::from((Ipv4Addr::BROADCAST, SERVER_PORT));
    sock.send_to(&buf[..len], to).await?;
    let mut rx = vec![0u8; 1500];
    let deadline = tokio::time::Instant::now() + LISTEN;
    loop {
        let got = tokio::time::timeout_at(deadline, sock.recv_from(&mut rx)).await;
        let Ok(Ok((n, _))) = got else {
            return Ok(None);
        };
        if let Some((id, server)) = codec::parse_offer(&rx[..n])
            && id == xid
            && server != own
        {
            return Ok(Some(server));
        }
    }
}

/// Probe now and then every `every`, publishing the other server seen (or `None`) on `tx`,
/// until `stop`. A probe that cannot run (no interface yet) counts as "none seen" and is logged.
pub async fn guard(
    interface: String,
    own: Ipv4Addr,
    every: Duration,
    tx: watch::Sender<Option<Ipv4Addr>>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let seen = match probe_once(&interface, own).await {
            Ok(seen) => seen,
            Err(e) => {
                tracing::warn!(%interface, error = %e, "dhcp: cannot probe for other DHCP servers");
                None
            }
        };
        tx.send_replace(seen);
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
    }
}
