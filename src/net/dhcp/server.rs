//! The serving loop: restore leases, wait for the interface and for the rogue probe, then read
//! bursts, answer from the table, write the lease file once per burst before any ACK goes out,
//! send, and publish the leases. Where replies go (RFC 2131 §4.1) is decided here too.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::watch;

use super::codec::{self, Message, MessageType, Network, Reply};
use super::leases::{self, Key, Request, Table, Verdict};
use super::{
    BATCH, CLIENT_PORT, Channels, PUBLISH_EVERY, SERVER_PORT, ServerConfig, State, bind, bump,
    file, probe, unix_now,
};

/// Restore the table from the lease file (a missing file is an empty table).
fn restored_table(cfg: &ServerConfig, file: &mut file::LeaseFile) -> Table {
    let mut table = Table::new(
        cfg.pool.0,
        cfg.pool.1,
        cfg.network.server_id,
        cfg.fixed.clone(),
        cfg.times,
    );
    match file.load() {
        Ok(Some(text)) => restore(&mut table, &text, &file.path),
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(file = %file.path.display(), error = %e, "dhcp: cannot read the lease file; starting empty");
        }
    }
    table
}

fn restore(table: &mut Table, text: &str, path: &std::path::Path) {
    let (restored, skipped) = table.restore(text);
    tracing::info!(file = %path.display(), restored, skipped, "dhcp: leases restored");
}

/// Run the server until `stop`: restore leases, wait until no other server answers, serve.
pub async fn run(cfg: ServerConfig, ch: Channels, mut stop: watch::Receiver<bool>) {
    let mut file = file::LeaseFile::new(cfg.lease_file.clone());
    let mut server = Server {
        table: restored_table(&cfg, &mut file),
        file: Some(file),
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
    /// The lease file; `None` only while a write is on the blocking pool.
    file: Option<file::LeaseFile>,
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
        // At most twice: a lease file boma has not seen is merged, then written over.
        for _ in 0..2 {
            let Some(mut file) = self.file.take() else {
                return true;
            };
            let text = self.table.to_file();
            let written = tokio::task::spawn_blocking(move || {
                let r = file.write(&text);
                (file, r)
            })
            .await;
            let Ok((file, written)) = written else {
                tracing::error!(file = %self.cfg.lease_file.display(), "dhcp: the lease writer panicked");
                self.file = Some(file::LeaseFile::new(self.cfg.lease_file.clone()));
                return true;
            };
            self.file = Some(file);
            match written {
                Ok(file::Written::Done) => break,
                Ok(file::Written::Foreign(text)) => {
                    restore(&mut self.table, &text, &self.cfg.lease_file);
                }
                Err(e) => {
                    bump(&self.ch.stats.write_errors);
                    tracing::error!(file = %self.cfg.lease_file.display(), error = %e, "dhcp: cannot write the lease file");
                    break;
                }
            }
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
        let outcome = match msg.kind {
            MessageType::Discover => self.discover(&msg, &key, now)?,
            MessageType::Request => self.request(&msg, &key, now)?,
            MessageType::Decline => {
                self.decline(&msg, &key, now);
                return None;
            }
            MessageType::Release => {
                bump(&self.ch.stats.releases);
                self.dirty |= self.table.release(&key, msg.ciaddr, now);
                return None;
            }
            MessageType::Inform => {
                bump(&self.ch.stats.informs);
                Outcome::Inform
            }
            _ => return None,
        };
        self.reply(&msg, outcome)
    }

    /// DISCOVER: an address offered, or none when the pool is exhausted.
    fn discover(&mut self, msg: &Message<'_>, key: &Key, now: u64) -> Option<Outcome> {
        let Some(ip) = self.table.offer(msg.chaddr, key, msg.requested_ip, now) else {
            bump(&self.ch.stats.exhausted);
            tracing::warn!(mac = %leases::mac_string(&msg.chaddr), "dhcp: no free address to offer");
            return None;
        };
        bump(&self.ch.stats.offers);
        Some(Outcome::Offer(ip))
    }

    /// REQUEST (selecting, renewing, rebinding or rebooting): the table's verdict.
    fn request(&mut self, msg: &Message<'_>, key: &Key, now: u64) -> Option<Outcome> {
        let stats = &self.ch.stats;
        if msg
            .server_id
            .is_some_and(|id| id != self.cfg.network.server_id)
        {
            // The client took another server's offer.
            bump(&stats.ignored);
            return None;
        }
        let req = Request {
            mac: msg.chaddr,
            key,
            client_id: msg.client_id,
            ip: msg.requested_ip.unwrap_or(msg.ciaddr),
            hostname: msg.host_label(),
            selecting: msg.server_id.is_some(),
            authoritative: self.cfg.authoritative,
        };
        match self.table.request(req, now) {
            Verdict::Ack(l) => {
                self.dirty = true;
                bump(&stats.acks);
                tracing::info!(ip = %l.addr, mac = %leases::mac_string(&l.mac), name = %l.hostname, "dhcp: lease");
                Some(Outcome::Ack(l.addr))
            }
            Verdict::Nak => {
                bump(&stats.naks);
                Some(Outcome::Nak)
            }
            Verdict::Ignore => {
                bump(&stats.ignored);
                None
            }
        }
    }

    /// DECLINE: the address is in use by someone else and kept out of the pool. Never answered.
    fn decline(&mut self, msg: &Message<'_>, key: &Key, now: u64) {
        bump(&self.ch.stats.declines);
        if let Some(ip) =
            (msg.requested_ip).filter(|_| msg.server_id == Some(self.cfg.network.server_id))
        {
            tracing::warn!(%ip, mac = %leases::mac_string(&msg.chaddr), "dhcp: address declined (in use); kept out of the pool");
            self.dirty |= self.table.decline(key, ip, now);
        }
    }

    /// The reply `outcome` makes to `msg`, encoded, and where it goes.
    fn reply(&self, msg: &Message<'_>, outcome: Outcome) -> Option<(Vec<u8>, SocketAddr)> {
        let lease = Some(u32::try_from(self.cfg.times.lease).unwrap_or(u32::MAX));
        let mut reply = Reply {
            kind: MessageType::Ack,
            to: msg,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            lease: None,
            hostname: None,
            message: None,
        };
        match outcome {
            Outcome::Offer(ip) => {
                reply.kind = MessageType::Offer;
                reply.yiaddr = ip;
                reply.lease = lease;
            }
            Outcome::Ack(ip) => {
                reply.yiaddr = ip;
                reply.ciaddr = msg.ciaddr;
                reply.lease = lease;
                reply.hostname = self.fixed_name(msg.chaddr);
            }
            Outcome::Nak => {
                reply.kind = MessageType::Nak;
                reply.message = Some("address not available");
            }
            Outcome::Inform => reply.ciaddr = msg.ciaddr,
        }
        let mut out = vec![0u8; codec::MAX_REPLY];
        let len = codec::emit(&reply, &self.cfg.network, &mut out).ok()?;
        out.truncate(len);
        Some((out, destination(msg, &reply)))
    }

    /// The name a static host is given (option 12), when `[[dhcp.hosts]]` sets one.
    fn fixed_name(&self, mac: [u8; 6]) -> Option<&str> {
        self.cfg
            .fixed
            .iter()
            .find(|f| f.mac == mac)?
            .name
            .as_deref()
    }
}

/// What a message that is answered gets: the table's decision, or configuration only.
enum Outcome {
    Offer(Ipv4Addr),
    Ack(Ipv4Addr),
    Nak,
    /// An ACK carrying configuration only (no address, no lease).
    Inform,
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
        file: None,
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
            // A well-formed BOOTREPLY: header, magic cookie, options that walk to their end
            // with a message type. (Not smoltcp's `DhcpRepr::parse`: it refuses an echoed client
            // identifier whose type is not Ethernet, which RFC 6842 has the server echo as is.)
            assert_eq!(bytes[0], 2, "a BOOTREPLY: {bytes:02x?}");
            assert_eq!(
                bytes[236..240],
                [99, 130, 83, 99],
                "magic cookie: {bytes:02x?}"
            );
            assert!(
                reply_options_walk(&bytes[240..]),
                "reply options do not walk to their end: {bytes:02x?}"
            );
        }
    }
}

/// The options of a reply are TLVs inside the buffer, end with END, and include the message
/// type.
fn reply_options_walk(options: &[u8]) -> bool {
    let (mut i, mut kind) = (0, false);
    while let Some(&code) = options.get(i) {
        match code {
            0 => i += 1,
            255 => return kind,
            _ => {
                let Some(&len) = options.get(i + 1) else {
                    return false;
                };
                kind |= code == 53 && len == 1;
                i += 2 + usize::from(len);
                if i > options.len() {
                    return false;
                }
            }
        }
    }
    false
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

    /// Inputs the fuzzer found breaking an invariant. 1: a client identifier of type 0 (not
    /// Ethernet), echoed in the OFFER as RFC 6842 says; smoltcp's parser refuses such a reply,
    /// which the invariant wrongly required.
    #[test]
    fn fuzz_findings_stay_fixed() {
        super::fuzz_packet(include_bytes!("fixtures/fuzz-crash-1.bin"));
    }

    #[test]
    fn reply_options_must_walk_to_an_end_with_a_type() {
        use super::reply_options_walk as walk;
        assert!(walk(&[53, 1, 2, 0, 61, 7, 0, 0, 0, 0, 0, 0, 0, 255]));
        assert!(!walk(&[53, 1, 2]), "no END");
        assert!(!walk(&[61, 7, 0, 0, 255]), "an option past the end");
        assert!(!walk(&[1, 4, 255, 255, 255, 0, 255]), "no message type");
    }
}
