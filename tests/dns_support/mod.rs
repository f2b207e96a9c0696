//! DNS test peers, all on 127.0.0.0/8: `kdig` (Debian knot-dnsutils) as the client, a small
//! authority of our own (`Stub`, UDP and TCP on one port, that can truncate, answer NXDOMAIN
//! with an SOA, count what it is asked and be stopped mid-test) as the upstream, and real
//! `dnsmasq` (`Dnsmasq`) as another upstream. A missing tool fails loudly: run `make deps`.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, SOA, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};

/// What kdig printed, parsed.
#[derive(Debug)]
pub struct Dig {
    pub status: String,
    pub flags: Vec<String>,
    /// `(name, ttl, type, rdata)` of the answer section.
    pub answers: Vec<(String, u32, String, String)>,
    /// Record types of the authority section.
    pub authority: Vec<String>,
    pub raw: String,
}

impl Dig {
    /// The rdata of the answers, in order.
    pub fn rdata(&self) -> Vec<String> {
        self.answers.iter().map(|a| a.3.clone()).collect()
    }

    pub fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }
}

fn tool(name: &str) -> String {
    for dir in ["/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin"] {
        let path = format!("{dir}/{name}");
        if std::path::Path::new(&path).exists() {
            return path;
        }
    }
    panic!("`{name}` is not installed: run `make deps` (Debian: knot-dnsutils, dnsmasq-base)");
}

/// `kdig @server args...` with a short timeout, parsed.
pub fn kdig(server: SocketAddr, args: &[&str]) -> Dig {
    let out = Command::new(tool("kdig"))
        .arg(format!("@{}", server.ip()))
        .arg("-p")
        .arg(server.port().to_string())
        .args(["+timeout=2", "+retry=1"])
        .args(args)
        .output()
        .expect("run kdig");
    let raw =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    parse_dig(raw)
}

fn parse_dig(raw: String) -> Dig {
    let mut status = String::new();
    let mut flags = Vec::new();
    let mut answers = Vec::new();
    let mut authority = Vec::new();
    let mut section = "";
    for line in raw.lines() {
        if let Some(rest) = line.split("status: ").nth(1) {
            status = rest.split(';').next().unwrap_or("").trim().to_string();
        } else if let Some(rest) = line.strip_prefix(";; Flags: ") {
            flags = rest
                .split(';')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .map(String::from)
                .collect();
        } else if line.starts_with(";; ") && line.ends_with("SECTION:") {
            section = if line.contains("ANSWER") {
                "answer"
            } else if line.contains("AUTHORITY") {
                "authority"
            } else {
                "other"
            };
        } else if line.trim().is_empty() || line.starts_with(';') {
            if line.trim().is_empty() {
                section = "";
            }
        } else {
            let words: Vec<&str> = line.split_whitespace().collect();
            if words.len() >= 5 {
                match section {
                    "answer" => answers.push((
                        words[0].to_string(),
                        words[1].parse().unwrap_or(0),
                        words[3].to_string(),
                        words[4..].join(" "),
                    )),
                    "authority" => authority.push(words[3].to_string()),
                    _ => {}
                }
            }
        }
    }
    Dig {
        status,
        flags,
        answers,
        authority,
        raw,
    }
}

/// Poll `kdig` until `ok` holds or `limit` passes; returns the last answer.
pub fn kdig_until(
    server: SocketAddr,
    args: &[&str],
    limit: Duration,
    ok: impl Fn(&Dig) -> bool,
) -> Dig {
    let deadline = Instant::now() + limit;
    loop {
        let d = kdig(server, args);
        if ok(&d) || Instant::now() > deadline {
            return d;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One stub answer.
#[derive(Debug, Clone)]
pub enum StubAnswer {
    A(IpAddr, u32),
    /// A TXT record of `n` bytes; over UDP the stub answers with TC and no records.
    BigTxt(usize),
    /// NXDOMAIN with an SOA whose minimum is this.
    NxDomain(u32),
}

/// A small authority on `ip` (UDP and TCP, one port) for tests: answers from its table,
/// NXDOMAIN (SOA minimum 300) for other names.
pub struct Stub {
    pub addr: SocketAddr,
    pub udp_queries: Arc<AtomicU64>,
    pub tcp_queries: Arc<AtomicU64>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.stop_now();
    }
}

impl Stub {
    pub fn start(ip: [u8; 4], table: &[(&str, StubAnswer)]) -> Stub {
        let table: HashMap<String, StubAnswer> = table
            .iter()
            .map(|(n, a)| (n.trim_end_matches('.').to_ascii_lowercase(), a.clone()))
            .collect();
        let table = Arc::new(table);
        let (udp, tcp) = bind_pair(IpAddr::from(ip));
        let addr = udp.local_addr().expect("addr");
        let udp_queries = Arc::new(AtomicU64::new(0));
        let tcp_queries = Arc::new(AtomicU64::new(0));
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let (uq, tq) = (Arc::clone(&udp_queries), Arc::clone(&tcp_queries));
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let udp = tokio::net::UdpSocket::from_std(udp).expect("udp");
                let tcp = tokio::net::TcpListener::from_std(tcp).expect("tcp");
                let serve = async {
                    let mut buf = vec![0u8; 4096];
                    loop {
                        tokio::select! {
                            r = udp.recv_from(&mut buf) => {
                                let Ok((n, from)) = r else { continue };
                                uq.fetch_add(1, Ordering::SeqCst);
                                if let Some(reply) = answer(&table, &buf[..n], true) {
                                    let _ = udp.send_to(&reply, from).await;
                                }
                            }
                            r = tcp.accept() => {
                                let Ok((mut s, _)) = r else { continue };
                                tq.fetch_add(1, Ordering::SeqCst);
                                let table = Arc::clone(&table);
                                tokio::spawn(async move {
                                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                                    let Ok(len) = s.read_u16().await else { return };
                                    let mut q = vec![0u8; usize::from(len)];
                                    if s.read_exact(&mut q).await.is_err() { return; }
                                    if let Some(reply) = answer(&table, &q, false) {
                                        let mut framed = (reply.len() as u16).to_be_bytes().to_vec();
                                        framed.extend_from_slice(&reply);
                                        let _ = s.write_all(&framed).await;
                                    }
                                });
                            }
                        }
                    }
                };
                tokio::select! {
                    _ = serve => {}
                    _ = stop_rx => {}
                }
            });
        });
        Stub {
            addr,
            udp_queries,
            tcp_queries,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// Stop answering: both sockets are closed when this returns.
    pub fn stop_now(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    pub fn udp(&self) -> u64 {
        self.udp_queries.load(Ordering::SeqCst)
    }

    pub fn tcp(&self) -> u64 {
        self.tcp_queries.load(Ordering::SeqCst)
    }
}

/// UDP and TCP sockets on the same free port of `ip`.
fn bind_pair(ip: IpAddr) -> (std::net::UdpSocket, std::net::TcpListener) {
    for _ in 0..32 {
        let udp = std::net::UdpSocket::bind((ip, 0)).expect("bind stub udp");
        let port = udp.local_addr().expect("addr").port();
        if let Ok(tcp) = std::net::TcpListener::bind((ip, port)) {
            udp.set_nonblocking(true).expect("nonblocking");
            tcp.set_nonblocking(true).expect("nonblocking");
            return (udp, tcp);
        }
    }
    panic!("no free UDP+TCP port on {ip}");
}

/// A free port on `ip` for both UDP and TCP (for dnsmasq, which binds itself).
pub fn free_port(ip: [u8; 4]) -> u16 {
    let (udp, _tcp) = bind_pair(IpAddr::from(ip));
    udp.local_addr().expect("addr").port()
}

fn answer(table: &HashMap<String, StubAnswer>, packet: &[u8], udp: bool) -> Option<Vec<u8>> {
    let q = Message::from_vec(packet).ok()?;
    let question = q.queries.first()?.clone();
    let name = question.name().clone();
    let key = name.to_ascii().trim_end_matches('.').to_ascii_lowercase();
    let mut m = Message::new(q.metadata.id, MessageType::Response, OpCode::Query);
    m.metadata.recursion_desired = q.metadata.recursion_desired;
    m.metadata.recursion_available = true;
    m.add_query(question.clone());
    let soa = |min| {
        let zone = Name::from_ascii("test.").expect("zone");
        let soa = SOA::new(zone.clone(), zone.clone(), 1, 60, 60, 60, min);
        Record::from_rdata(zone, 600, RData::SOA(soa))
    };
    match table.get(&key) {
        Some(StubAnswer::A(ip, ttl)) => match (ip, question.query_type()) {
            (IpAddr::V4(v4), RecordType::A) => {
                m.add_answer(Record::from_rdata(name, *ttl, RData::A(A(*v4))));
            }
            _ => {
                m.add_authority(soa(300));
            }
        },
        Some(StubAnswer::BigTxt(n)) => {
            if udp {
                m.metadata.truncation = true;
            } else {
                let chunks: Vec<String> = "x"
                    .repeat(*n)
                    .as_bytes()
                    .chunks(200)
                    .map(|c| String::from_utf8_lossy(c).into_owned())
                    .collect();
                m.add_answer(Record::from_rdata(name, 60, RData::TXT(TXT::new(chunks))));
            }
        }
        Some(StubAnswer::NxDomain(min)) => {
            m.metadata.response_code = ResponseCode::NXDomain;
            m.add_authority(soa(*min));
        }
        None => {
            m.metadata.response_code = ResponseCode::NXDomain;
            m.add_authority(soa(300));
        }
    }
    m.to_vec().ok()
}

/// Real dnsmasq on `ip:port` with extra arguments; killed on drop.
pub struct Dnsmasq {
    child: Child,
    pub addr: SocketAddr,
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Dnsmasq {
    pub fn start(ip: [u8; 4], args: &[&str]) -> Dnsmasq {
        let port = free_port(ip);
        let addr = SocketAddr::from((ip, port));
        let child = Command::new(tool("dnsmasq"))
            .args([
                "--keep-in-foreground",
                "--no-resolv",
                "--no-hosts",
                "--bind-interfaces",
                "--pid-file",
                "--user=root",
            ])
            .arg(format!("--listen-address={}", addr.ip()))
            .arg(format!("--port={port}"))
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn dnsmasq");
        let d = Dnsmasq { child, addr };
        // Ready when it answers (anything) over UDP.
        let ready = kdig_until(
            addr,
            &["ready.invalid", "+timeout=1", "+retry=0"],
            Duration::from_secs(10),
            |d| !d.status.is_empty(),
        );
        assert!(
            !ready.status.is_empty(),
            "dnsmasq did not start:\n{}",
            ready.raw
        );
        d
    }
}
