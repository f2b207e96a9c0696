//! The trial of a freshly updated slot: when the running slot is the one on trial, boma commits
//! it only after it has been ready and answering DNS and HTTP on its own listeners for
//! `[update] commit_after`, probed every few seconds (a failed probe starts the wait again). A
//! system that never gets there is rebooted by init's trial guard and, after its trial boots, the
//! boot script goes back to the old slot.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::Updater;

/// What must answer before a trial is committed.
#[derive(Debug, Clone, Copy)]
pub enum Probe {
    /// A DNS listener: a query for `localhost.` must get a response.
    Dns(SocketAddr),
    /// An HTTP entrypoint: `GET /ping` must get an HTTP status line.
    Http(SocketAddr),
}

const EVERY: Duration = Duration::from_secs(5);
const TIMEOUT: Duration = Duration::from_secs(3);

/// Where to reach a listener bound to `addr` from this host.
fn reachable(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        IpAddr::V4(v) if v.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v) if v.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

async fn dns(addr: SocketAddr) -> Result<(), String> {
    let local: SocketAddr = match addr {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let sock = tokio::net::UdpSocket::bind(local)
        .await
        .map_err(|e| e.to_string())?;
    // id 0xb0c0, RD, one question: localhost. A IN.
    let q = b"\xb0\xc0\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x09localhost\x00\x00\x01\x00\x01";
    sock.send_to(q, addr).await.map_err(|e| e.to_string())?;
    let mut buf = [0u8; 512];
    let got = tokio::time::timeout(TIMEOUT, sock.recv_from(&mut buf)).await;
    match got {
        Ok(Ok((n, from))) if n >= 12 && buf[..2] == q[..2] && from.port() == addr.port() => Ok(()),
        Ok(Ok(_)) => Err("an answer that is not one".into()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer".into()),
    }
}

async fn http(addr: SocketAddr) -> Result<(), String> {
    let go = async {
        let mut s = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        s.write_all(b"GET /ping HTTP/1.0\r\nHost: boma-commit-probe\r\n\r\n")
            .await
            .map_err(|e| e.to_string())?;
        let mut head = [0u8; 12];
        s.read_exact(&mut head).await.map_err(|e| e.to_string())?;
        if head.starts_with(b"HTTP/1.") {
            Ok(())
        } else {
            Err("not an HTTP answer".to_string())
        }
    };
    tokio::time::timeout(TIMEOUT, go)
        .await
        .unwrap_or_else(|_| Err("no answer".into()))
}

async fn probe(p: Probe) -> Result<(), String> {
    match p {
        Probe::Dns(a) => dns(reachable(a)).await.map_err(|e| format!("DNS {a}: {e}")),
        Probe::Http(a) => http(reachable(a))
            .await
            .map_err(|e| format!("HTTP {a}: {e}")),
    }
}

/// Commit the running slot if it is on trial, once `probes` have all answered for
/// `commit_after`. Returns at once when there is no trial.
pub async fn run(updater: Arc<Updater>, probes: Vec<Probe>) {
    let Ok(sys) = updater.system().cloned() else {
        return;
    };
    let on_trial = match updater.state() {
        Ok(s) => s.trial.as_ref().is_some_and(|t| t.slot == sys.slot),
        Err(e) => {
            tracing::warn!(error = %e, "update: the A/B state cannot be read");
            false
        }
    };
    if !on_trial {
        return;
    }
    let wait = updater.config().commit_after.to_std();
    tracing::info!(slot = sys.slot.name(), version = %sys.version, "update: this slot is on trial; committing it after {wait:?} of serving");
    let mut since = Instant::now();
    loop {
        let mut failed = None;
        for p in &probes {
            if let Err(e) = probe(*p).await {
                failed = Some(e);
                break;
            }
        }
        if let Some(e) = failed {
            tracing::warn!(error = %e, "update: trial probe failed; the wait starts again");
            since = Instant::now();
        } else if since.elapsed() >= wait {
            break;
        }
        let left = wait.saturating_sub(since.elapsed());
        tokio::time::sleep(left.clamp(Duration::from_millis(200), EVERY)).await;
    }
    // A failed write (the remount refused, an I/O error) is tried again: giving up would let
    // init's trial guard roll back a version that works.
    loop {
        let u = Arc::clone(&updater);
        match tokio::task::spawn_blocking(move || u.commit()).await {
            Ok(Ok(())) => {
                tracing::info!(version = %sys.version, "update: slot committed");
                return;
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "update: cannot commit the slot; trying again")
            }
            Err(e) => tracing::error!(error = %e, "update: commit task failed; trying again"),
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// The pause between two attempts to commit.
const RETRY: Duration = Duration::from_secs(15);
