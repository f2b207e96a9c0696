//! Asking upstream servers: one question, tried on each upstream in turn (configuration order
//! with `strict_order`, else the fastest recently answering first, with a periodic pass in
//! configuration order so a recovered server is found again), over UDP from a fresh socket on a
//! kernel-chosen port with a random ID, and again over TCP when the UDP answer is truncated.
//!
//! An answer is accepted only if it comes from the server asked (connected socket), carries our
//! ID and echoes our question; anything else on the socket is ignored until the timeout. Every
//! wait is bounded by `upstream_timeout`. This module caches nothing and filters nothing.

use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use super::wire::{EDNS_PAYLOAD, MAX_UDP};

/// Upstreams used at most (more in the config or resolv.conf are ignored).
pub const MAX_UPSTREAMS: usize = 16;

/// Why an upstream gave no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("no upstream server is configured")]
    NoUpstream,
    #[error("upstream {0}: no answer in time")]
    Timeout(SocketAddr),
    #[error("upstream {addr}: {source}")]
    Io {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("upstream {addr}: answered {rcode}")]
    Rcode {
        addr: SocketAddr,
        rcode: ResponseCode,
    },
    #[error("upstream {0}: answer does not parse or does not match the question")]
    Garbled(SocketAddr),
}

struct Server {
    addr: SocketAddr,
    /// Smoothed round-trip time in microseconds (a failure sets it to the timeout).
    srtt_us: AtomicU32,
}

/// The upstream servers and how to use them.
pub struct Upstreams {
    servers: Vec<Server>,
    strict: bool,
    timeout: Duration,
    asked: AtomicU64,
}

/// A random 16-bit query ID: SipHash with per-process random keys over a counter.
fn random_id() -> u16 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    std::collections::hash_map::RandomState::new().hash_one(n) as u16
}

/// The nameservers of a resolv.conf text, minus boma's own listen addresses (a loop).
pub fn from_resolv_conf(text: &str, own: &[SocketAddr]) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some("nameserver") {
            continue;
        }
        let Some(ip) = words.next() else { continue };
        let ip = ip.split('%').next().unwrap_or(ip);
        let Ok(ip) = ip.parse::<IpAddr>() else {
            continue;
        };
        let addr = SocketAddr::new(ip, 53);
        let is_own = own.iter().any(|o| {
            o.port() == 53 && (o.ip() == ip || (o.ip().is_unspecified() && ip.is_loopback()))
        });
        if !ip.is_unspecified() && !is_own && !out.contains(&addr) {
            out.push(addr);
        }
    }
    out.truncate(MAX_UPSTREAMS);
    out
}

impl Upstreams {
    pub fn new(addrs: &[SocketAddr], strict: bool, timeout: Duration) -> Upstreams {
        Upstreams {
            servers: addrs
                .iter()
                .take(MAX_UPSTREAMS)
                .map(|&addr| Server {
                    addr,
                    srtt_us: AtomicU32::new(0),
                })
                .collect(),
            strict,
            timeout,
            asked: AtomicU64::new(0),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.servers.is_empty()
    }

    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.servers.iter().map(|s| s.addr).collect()
    }

    /// Indexes of the servers in the order to try them.
    fn order(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.servers.len()).collect();
        let n = self.asked.fetch_add(1, Ordering::Relaxed);
        if !self.strict && n % 64 != 63 {
            order.sort_by_key(|&i| self.servers[i].srtt_us.load(Ordering::Relaxed));
        }
        order
    }

    /// The first usable answer (NOERROR or NXDOMAIN) to `query`, trying each server once.
    pub async fn resolve(&self, query: &Query) -> Result<Message, UpstreamError> {
        let mut last = UpstreamError::NoUpstream;
        for i in self.order() {
            let server = &self.servers[i];
            let started = Instant::now();
            match self.ask(server.addr, query).await {
                Ok(msg) => {
                    let rtt = u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX);
                    let old = server.srtt_us.load(Ordering::Relaxed);
                    let srtt = if old == 0 {
                        rtt
                    } else {
                        ((u64::from(old) * 7 + u64::from(rtt)) / 8) as u32
                    };
                    server.srtt_us.store(srtt.max(1), Ordering::Relaxed);
                    return Ok(msg);
                }
                Err(e) => {
                    tracing::debug!(error = %e, "upstream failed");
                    let penalty = u32::try_from(self.timeout.as_micros()).unwrap_or(u32::MAX);
                    server.srtt_us.store(penalty, Ordering::Relaxed);
                    last = e;
                }
            }
        }
        Err(last)
    }

    /// One server: UDP, then TCP if the UDP answer is truncated.
    async fn ask(&self, addr: SocketAddr, query: &Query) -> Result<Message, UpstreamError> {
        let id = random_id();
        let packet = request(id, query).ok_or(UpstreamError::Garbled(addr))?;
        let msg = self.ask_udp(addr, id, query, &packet).await?;
        let msg = if msg.metadata.truncation {
            self.ask_tcp(addr, id, query, &packet).await?
        } else {
            msg
        };
        match msg.metadata.response_code {
            ResponseCode::NoError | ResponseCode::NXDomain => Ok(msg),
            rcode => Err(UpstreamError::Rcode { addr, rcode }),
        }
    }

    async fn ask_udp(
        &self,
        addr: SocketAddr,
        id: u16,
        query: &Query,
        packet: &[u8],
    ) -> Result<Message, UpstreamError> {
        let io = |source| UpstreamError::Io { addr, source };
        let local: SocketAddr = match addr {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let socket = UdpSocket::bind(local).await.map_err(io)?;
        socket.connect(addr).await.map_err(io)?;
        socket.send(packet).await.map_err(io)?;
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut buf = vec![0u8; MAX_UDP];
        loop {
            let n = tokio::time::timeout_at(deadline, socket.recv(&mut buf))
                .await
                .map_err(|_| UpstreamError::Timeout(addr))?
                .map_err(io)?;
            if let Some(msg) = answer_to(&buf[..n], id, query) {
                return Ok(msg);
            }
            // Not ours (late, spoofed or garbled): keep waiting for the real one.
        }
    }

    async fn ask_tcp(
        &self,
        addr: SocketAddr,
        id: u16,
        query: &Query,
        packet: &[u8],
    ) -> Result<Message, UpstreamError> {
        let io = |source| UpstreamError::Io { addr, source };
        let exchange = async {
            let mut stream = TcpStream::connect(addr).await.map_err(io)?;
            let len = u16::try_from(packet.len()).map_err(|_| UpstreamError::Garbled(addr))?;
            let mut framed = Vec::with_capacity(packet.len() + 2);
            framed.extend_from_slice(&len.to_be_bytes());
            framed.extend_from_slice(packet);
            stream.write_all(&framed).await.map_err(io)?;
            let len = stream.read_u16().await.map_err(io)?;
            let mut buf = vec![0u8; usize::from(len)];
            stream.read_exact(&mut buf).await.map_err(io)?;
            answer_to(&buf, id, query).ok_or(UpstreamError::Garbled(addr))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| UpstreamError::Timeout(addr))?
    }
}

/// The query boma sends upstream: our ID, recursion desired, EDNS with our payload size.
pub fn request(id: u16, query: &Query) -> Option<Vec<u8>> {
    let mut msg = Message::new(id, MessageType::Query, OpCode::Query);
    msg.metadata.recursion_desired = true;
    msg.add_query(query.clone());
    let mut edns = Edns::new();
    edns.set_max_payload(EDNS_PAYLOAD);
    msg.set_edns(edns);
    msg.to_vec().ok()
}

/// `packet` parsed, if it is the answer to our question `id`/`query`.
pub fn answer_to(packet: &[u8], id: u16, query: &Query) -> Option<Message> {
    let msg = Message::from_vec(packet).ok()?;
    let q = msg.queries.first()?;
    let matches = msg.metadata.id == id
        && msg.metadata.message_type == MessageType::Response
        && msg.queries.len() == 1
        && q.name() == query.name()
        && q.query_type() == query.query_type()
        && q.query_class() == query.query_class();
    matches.then_some(msg)
}

#[cfg(test)]
mod tests {
    use hickory_proto::rr::{Name, RecordType};

    use super::*;

    #[test]
    fn resolv_conf() {
        let text = "# comment\nsearch lan\nnameserver 192.0.2.1\nnameserver fe80::1%eth0\n\
                    nameserver 192.0.2.1\nnameserver 10.0.0.1\nnameserver 0.0.0.0\noptions x\n\
                    nameserver bogus\nnameserver 127.0.0.1\n";
        let own: Vec<SocketAddr> = vec!["10.0.0.1:53".parse().expect("addr")];
        let got: Vec<String> = from_resolv_conf(text, &own)
            .iter()
            .map(|a| a.to_string())
            .collect();
        assert_eq!(got, ["192.0.2.1:53", "[fe80::1]:53", "127.0.0.1:53"]);
        // Listening on every address: a loopback nameserver would be boma itself.
        let any: Vec<SocketAddr> = vec!["0.0.0.0:53".parse().expect("addr")];
        let got = from_resolv_conf(text, &any);
        assert_eq!(got.len(), 3);
        assert!(got.iter().all(|a| !a.ip().is_loopback()));
    }

    #[test]
    fn answers_must_match_the_question() {
        let query = Query::query(Name::from_ascii("a.test.").expect("n"), RecordType::A);
        let packet = request(42, &query).expect("request");
        assert!(
            answer_to(&packet, 42, &query).is_none(),
            "a query is no answer"
        );
        let mut msg = Message::from_vec(&packet).expect("parse");
        msg.metadata.message_type = MessageType::Response;
        let answer = msg.to_vec().expect("encode");
        assert!(answer_to(&answer, 42, &query).is_some());
        assert!(answer_to(&answer, 43, &query).is_none());
        let other = Query::query(Name::from_ascii("b.test.").expect("n"), RecordType::A);
        assert!(answer_to(&answer, 42, &other).is_none());
        let upper = Query::query(Name::from_ascii("A.TEST.").expect("n"), RecordType::A);
        assert!(
            answer_to(&answer, 42, &upper).is_some(),
            "names compare ignoring case"
        );
        assert!(answer_to(&answer[..answer.len() - 1], 42, &query).is_none());
        assert_ne!(
            (0..8).map(|_| random_id()).collect::<Vec<_>>(),
            vec![random_id(); 8]
        );
    }

    #[test]
    fn strict_order_and_fastest_order() {
        let addrs: Vec<SocketAddr> = vec![
            "192.0.2.1:53".parse().expect("a"),
            "192.0.2.2:53".parse().expect("b"),
        ];
        let t = Duration::from_secs(1);
        let strict = Upstreams::new(&addrs, true, t);
        strict.servers[0]
            .srtt_us
            .store(1_000_000, Ordering::Relaxed);
        assert_eq!(strict.order(), [0, 1]);
        let fastest = Upstreams::new(&addrs, false, t);
        assert_eq!(
            fastest.order(),
            [0, 1],
            "config order while nothing is known"
        );
        fastest.servers[0]
            .srtt_us
            .store(1_000_000, Ordering::Relaxed);
        fastest.servers[1].srtt_us.store(500, Ordering::Relaxed);
        let orders: Vec<Vec<usize>> = (0..64).map(|_| fastest.order()).collect();
        assert_eq!(orders.iter().filter(|o| **o == [1, 0]).count(), 63);
        assert_eq!(
            orders.iter().filter(|o| **o == [0, 1]).count(),
            1,
            "periodic probe"
        );
        assert_eq!(fastest.addrs(), addrs);
    }
}
