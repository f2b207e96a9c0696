//! Tests of the query path through [`Resolver::handle`] and [`Resolver::forward`]: malformed
//! packets dropped and counted, admission, local answers, dnsmasq's policies, caching, rebind
//! protection and serve-stale against an in-process upstream, and a deterministic mutation fuzz
//! of real queries that must never panic.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::cache::Cache;
use super::handler::{Policy, Resolver, Step, cache_ttl};
use super::upstream::Upstreams;
use super::wire::Transport;
use super::zone::{LocalZone, ZoneSpec, fqdn};
use crate::ipnet::IpSet;

const LAN: &str = "127.0.0.1:40000";
const OUTSIDE: &str = "192.0.2.9:40000";

fn spec() -> ZoneSpec {
    ZoneSpec {
        origin: fqdn("village.lan").expect("zone"),
        addrs: vec![IpAddr::from([10, 0, 0, 1])],
        ttl: 60,
        wildcard: true,
        hosts: vec![("printer".into(), vec![IpAddr::from([10, 0, 0, 5])])],
    }
}

fn resolver(upstreams: &[SocketAddr]) -> Resolver {
    Resolver::new(
        LocalZone::build(&spec(), &BTreeSet::new(), &[], 1),
        Cache::new(100, Duration::from_secs(3600)),
        100,
        Upstreams::new(upstreams, true, Duration::from_millis(500)),
        Policy {
            allowed: IpSet::parse(&["127.0.0.0/8"]).expect("nets"),
            local: false,
            auto_address: false,
            domain_needed: true,
            bogus_priv: true,
            rebind_protection: true,
            rebind_allow: vec![fqdn("rebind-ok.test").expect("name")],
            serve_stale: true,
        },
        8,
        None,
    )
}

fn query(name: &str, t: RecordType) -> Vec<u8> {
    let mut m = Message::new(0x4242, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).expect("name"), t));
    let mut e = Edns::new();
    e.set_max_payload(1232);
    m.set_edns(e);
    m.to_vec().expect("encode")
}

fn client(s: &str) -> SocketAddr {
    s.parse().expect("addr")
}

fn reply(step: Step) -> Message {
    match step {
        Step::Reply(bytes) => Message::from_vec(&bytes).expect("reply parses"),
        Step::Drop => panic!("dropped"),
        Step::Forward(_) => panic!("forwarded"),
    }
}

fn ask(r: &Resolver, name: &str, t: RecordType) -> Message {
    reply(r.handle(&query(name, t), client(LAN), Transport::Udp, Instant::now()))
}

#[test]
fn malformed_packets_are_dropped_and_counted() {
    let r = resolver(&[]);
    let mut response = query("a.village.lan.", RecordType::A);
    response[2] |= 0x80; // QR: a response sent to us
    let mut cut = query("a.village.lan.", RecordType::A);
    cut.truncate(cut.len() - 7);
    let mut bad_label = query("a.village.lan.", RecordType::A);
    bad_label[12] = 0xC0; // a compression pointer to itself
    bad_label[13] = 12;
    let packets: Vec<Vec<u8>> = vec![
        Vec::new(),
        vec![0; 5],
        vec![0xff; 11],
        response,
        cut,
        bad_label,
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
    ];
    for p in &packets {
        for t in [Transport::Udp, Transport::Tcp] {
            assert!(
                matches!(r.handle(p, client(LAN), t, Instant::now()), Step::Drop),
                "{p:?}"
            );
        }
    }
    let n = (packets.len() * 2) as u64;
    assert_eq!(r.stats.malformed.load(Ordering::Relaxed), n);
    assert_eq!(r.stats.queries.load(Ordering::Relaxed), n);
    // The server still answers afterwards.
    assert_eq!(ask(&r, "x.village.lan.", RecordType::A).answers.len(), 1);
}

#[test]
fn clients_outside_the_allowed_networks_are_refused() {
    let r = resolver(&[]);
    let q = query("x.village.lan.", RecordType::A);
    let m = reply(r.handle(&q, client(OUTSIDE), Transport::Udp, Instant::now()));
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    assert!(m.answers.is_empty());
    assert_eq!(m.metadata.id, 0x4242);
    assert_eq!(r.stats.refused.load(Ordering::Relaxed), 1);
    let mapped = client("[::ffff:127.0.0.1]:40000");
    let m = reply(r.handle(&q, mapped, Transport::Udp, Instant::now()));
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
}

/// A resolver admitting `local` only (no CIDR), on a host with a LAN of 10.66.0.1/24.
fn local_only() -> Resolver {
    let r = Resolver::new(
        LocalZone::build(&spec(), &BTreeSet::new(), &[], 1),
        Cache::new(100, Duration::from_secs(3600)),
        100,
        Upstreams::new(&[], false, Duration::from_millis(200)),
        Policy {
            allowed: IpSet::default(),
            local: true,
            auto_address: false,
            domain_needed: true,
            bogus_priv: true,
            rebind_protection: true,
            rebind_allow: Vec::new(),
            serve_stale: true,
        },
        8,
        None,
    );
    let lan = crate::config::Ipv4Cidr {
        addr: [10, 66, 0, 1].into(),
        prefix: 24,
    };
    let wan = crate::config::Ipv4Cidr {
        addr: [192, 168, 77, 1].into(),
        prefix: 24,
    };
    r.set_interfaces(vec![(lan, false), (wan, true)]);
    r
}

#[test]
fn local_service_admits_loopback_link_local_and_interface_subnets_only() {
    let r = local_only();
    let q = query("x.village.lan.", RecordType::A);
    let code = |from: &str| {
        let m = reply(r.handle(&q, client(from), Transport::Udp, Instant::now()));
        m.metadata.response_code
    };
    for inside in [
        "127.0.0.1:5000",
        "10.66.0.77:5000",
        "[::1]:5000",
        "[fe80::1]:5000",
    ] {
        assert_eq!(code(inside), ResponseCode::NoError, "{inside}");
    }
    for outside in [
        "10.67.0.1:5000",
        "192.168.77.5:5000",
        "192.0.2.9:5000",
        "[2001:db8::1]:5000",
    ] {
        assert_eq!(code(outside), ResponseCode::Refused, "{outside}");
    }
    // The answers do not follow the interface unless `address = "auto"` says so.
    let m = reply(r.handle(
        &q,
        client("10.66.0.77:5000"),
        Transport::Udp,
        Instant::now(),
    ));
    assert_eq!(m.answers[0].data, RData::A(A([10, 0, 0, 1].into())));
}

#[test]
fn impossible_sources_are_dropped_and_counted() {
    let r = local_only();
    let q = query("x.village.lan.", RecordType::A);
    for from in [
        "10.66.0.77:0",
        "0.0.0.0:5000",
        "255.255.255.255:5000",
        "10.66.0.255:5000",
        "224.0.0.1:5000",
        "[ff02::1]:5000",
    ] {
        assert!(
            matches!(
                r.handle(&q, client(from), Transport::Udp, Instant::now()),
                Step::Drop
            ),
            "{from} was answered"
        );
    }
    assert_eq!(r.stats.bad_source.load(Ordering::Relaxed), 6);
}

#[test]
fn local_answers_and_policies() {
    let r = resolver(&[]);
    let m = ask(&r, "Printer.Village.Lan.", RecordType::A);
    assert!(m.metadata.authoritative);
    assert_eq!(m.answers[0].data, RData::A(A([10, 0, 0, 5].into())));
    assert_eq!(m.answers[0].name.to_string(), "Printer.Village.Lan.");
    let m = ask(&r, "5.0.0.10.in-addr.arpa.", RecordType::PTR);
    assert_eq!(m.answers[0].data.to_string(), "printer.village.lan.");
    let m = ask(&r, "x.village.lan.", RecordType::TXT);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(m.authorities[0].record_type(), RecordType::SOA);
    // domain-needed and bogus-priv answer without forwarding.
    let m = ask(&r, "plainname.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    let m = ask(&r, "9.1.168.192.in-addr.arpa.", RecordType::PTR);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(r.stats.policy.load(Ordering::Relaxed), 2);
    // No upstream: REFUSED, as dnsmasq.
    let m = ask(&r, "www.example.org.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    // Unsupported questions get an error code, not silence.
    let m = ask(&r, "village.lan.", RecordType::AXFR);
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
}

#[test]
fn zone_swaps_are_seen_by_the_next_query() {
    let r = resolver(&[]);
    let mut s = spec();
    s.wildcard = false;
    r.set_zone(LocalZone::build(&s, &BTreeSet::new(), &[], 2));
    let m = ask(&r, "app.village.lan.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    let hosts: BTreeSet<String> = ["app.village.lan".to_string()].into();
    r.set_zone(LocalZone::build(&s, &hosts, &[], 3));
    let m = ask(&r, "app.village.lan.", RecordType::A);
    assert_eq!(m.answers.len(), 1);
}

#[test]
fn negative_and_positive_cache_ttls() {
    let owner = Name::from_ascii("x.test.").expect("n");
    let a = |ttl| Record::from_rdata(owner.clone(), ttl, RData::A(A([93, 184, 216, 34].into())));
    let soa = |ttl, min| {
        Record::from_rdata(
            owner.clone(),
            ttl,
            RData::SOA(SOA::new(owner.clone(), owner.clone(), 1, 1, 1, 1, min)),
        )
    };
    assert_eq!(
        cache_ttl(ResponseCode::NoError, &[a(300), a(60)], &[]),
        Some(60)
    );
    assert_eq!(
        cache_ttl(ResponseCode::NoError, &[a(999_999)], &[]),
        Some(86_400)
    );
    assert_eq!(cache_ttl(ResponseCode::NoError, &[a(0)], &[]), None);
    assert_eq!(
        cache_ttl(ResponseCode::NXDomain, &[], &[soa(900, 300)]),
        Some(300)
    );
    assert_eq!(
        cache_ttl(ResponseCode::NoError, &[], &[soa(30, 300)]),
        Some(30)
    );
    assert_eq!(
        cache_ttl(ResponseCode::NXDomain, &[], &[soa(99_999, 99_999)]),
        Some(3600)
    );
    assert_eq!(
        cache_ttl(ResponseCode::NXDomain, &[], &[]),
        None,
        "no SOA: not cached"
    );
    assert_eq!(cache_ttl(ResponseCode::ServFail, &[a(60)], &[]), None);
}

/// A tiny upstream on 127.0.0.1: answers `A` with `addr` and `ttl`, counts questions; stops
/// answering (socket closed) when dropped.
struct Stub {
    addr: SocketAddr,
    asked: Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Stub {
    async fn start(ip: [u8; 4], ttl: u32) -> Stub {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = socket.local_addr().expect("addr");
        let asked = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let count = Arc::clone(&asked);
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            while let Ok((n, from)) = socket.recv_from(&mut buf).await {
                let Ok(q) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                count.fetch_add(1, Ordering::SeqCst);
                let mut m = Message::new(q.metadata.id, MessageType::Response, OpCode::Query);
                let question = q.queries[0].clone();
                let name = question.name().clone();
                m.add_query(question);
                if name.to_string().starts_with("missing") {
                    m.metadata.response_code = ResponseCode::NXDomain;
                    let soa = SOA::new(name.clone(), name.clone(), 1, 1, 1, 1, 120);
                    m.add_authority(Record::from_rdata(name, 600, RData::SOA(soa)));
                } else {
                    m.add_answer(Record::from_rdata(name, ttl, RData::A(A(ip.into()))));
                }
                let _ = socket.send_to(&m.to_vec().expect("encode"), from).await;
            }
        });
        Stub { addr, asked, task }
    }

    fn asked(&self) -> u64 {
        self.asked.load(Ordering::SeqCst)
    }
}

async fn resolve(r: &Resolver, name: &str, now: Instant) -> Message {
    match r.handle(
        &query(name, RecordType::A),
        client(LAN),
        Transport::Udp,
        now,
    ) {
        Step::Forward(p) => Message::from_vec(&r.forward(p).await).expect("reply parses"),
        other => reply(other),
    }
}

#[tokio::test]
async fn forwards_caches_and_serves_stale() {
    let stub = Stub::start([93, 184, 216, 34], 60).await;
    let r = resolver(&[stub.addr]);
    let t0 = Instant::now();
    let m = resolve(&r, "www.example.org.", t0).await;
    assert_eq!(m.answers[0].data, RData::A(A([93, 184, 216, 34].into())));
    assert!(!m.metadata.authoritative && m.metadata.recursion_available);
    let m = resolve(&r, "WWW.example.org.", t0 + Duration::from_secs(10)).await;
    assert_eq!(m.answers[0].ttl, 50, "cached, aged");
    assert_eq!(stub.asked(), 1);
    // Negative answers are cached by their SOA.
    for _ in 0..3 {
        let m = resolve(&r, "missing.example.org.", Instant::now()).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    }
    assert_eq!(stub.asked(), 2);
    // The uplink goes down: the expired entry is served stale.
    stub.task.abort();
    let _ = stub.task.await;
    let later = t0 + Duration::from_secs(61);
    let m = resolve(&r, "www.example.org.", later).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(m.answers[0].ttl, 30);
    assert_eq!(r.stats.stale.load(Ordering::Relaxed), 1);
    let m = resolve(&r, "never-seen.example.org.", later).await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
}

#[tokio::test]
async fn private_answers_from_upstream_are_dropped() {
    let stub = Stub::start([192, 168, 1, 1], 60).await;
    let r = resolver(&[stub.addr]);
    let m = resolve(&r, "evil.example.org.", Instant::now()).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
    assert_eq!(r.stats.rebind_dropped.load(Ordering::Relaxed), 1);
    let m = resolve(&r, "nas.rebind-ok.test.", Instant::now()).await;
    assert_eq!(
        m.answers.len(),
        1,
        "allowed domain keeps its private answer"
    );
}

/// Deterministic xorshift over real queries: every mutation goes through the whole synchronous
/// path, and every reply must parse and fit (`fuzz_packet` checks).
#[test]
fn mutated_queries_never_panic() {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let seeds = [
        query("printer.village.lan.", RecordType::A),
        query("village.lan.", RecordType::ANY),
        query("5.0.0.10.in-addr.arpa.", RecordType::PTR),
        query("www.example.org.", RecordType::AAAA),
    ];
    for seed in &seeds {
        super::fuzz_packet(seed);
        for _ in 0..2000 {
            let mut p = seed.clone();
            for _ in 0..(next() % 4 + 1) {
                let i = (next() as usize) % p.len();
                match next() % 3 {
                    0 => p[i] = next() as u8,
                    1 => p.truncate(i),
                    _ => p.insert(i, next() as u8),
                }
                if p.is_empty() {
                    break;
                }
            }
            super::fuzz_packet(&p);
        }
    }
}
