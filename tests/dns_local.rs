//! The local zone as a client sees it: `kdig` against the real boma binary for A, AAAA, SOA, NS,
//! PTR, NXDOMAIN, the wildcard, TCP and truncation; malformed packets dropped without stopping
//! the server; clients outside `allowed_networks` refused.

mod dns_support;
mod support;

use std::net::UdpSocket;
use std::time::Duration;

use dns_support::kdig;
use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use support::Boma;

fn zone_config() -> String {
    let big: Vec<String> = (1..=40).map(|i| format!("\"10.1.0.{i}\"")).collect();
    format!(
        r#"
[dns]
listen = ["127.0.0.1:0"]
zone = "village.lan"
address = ["10.0.0.1", "fd00::1"]
upstreams = []
local_ttl = "45s"

[dns.hosts]
printer = "10.0.0.5"
big = [{}]
"#,
        big.join(", ")
    )
}

#[test]
fn local_zone_answers() {
    let boma = Boma::start(&zone_config(), None);
    let dns = boma.dns_addr();

    // The wildcard: any name of the zone, A and AAAA, authoritative, with the documented TTL.
    let d = kdig(dns, &["anything.village.lan", "A"]);
    assert_eq!(d.status, "NOERROR", "{}", d.raw);
    assert!(d.has_flag("aa"), "{}", d.raw);
    assert_eq!(d.rdata(), ["10.0.0.1"], "{}", d.raw);
    assert_eq!(d.answers[0].1, 45, "local TTL: {}", d.raw);
    assert_eq!(kdig(dns, &["a.b.village.lan", "AAAA"]).rdata(), ["fd00::1"]);
    assert_eq!(kdig(dns, &["village.lan", "A"]).rdata(), ["10.0.0.1"]);

    // SOA and NS of the apex; other types are NODATA with the SOA.
    let d = kdig(dns, &["village.lan", "SOA"]);
    assert_eq!(d.answers.len(), 1, "{}", d.raw);
    assert!(
        d.answers[0]
            .3
            .starts_with("ns.village.lan. hostmaster.village.lan. "),
        "{}",
        d.raw
    );
    assert_eq!(
        kdig(dns, &["village.lan", "NS"]).rdata(),
        ["ns.village.lan."]
    );
    let d = kdig(dns, &["x.village.lan", "MX"]);
    assert_eq!(
        (d.status.as_str(), d.answers.len()),
        ("NOERROR", 0),
        "{}",
        d.raw
    );
    assert_eq!(d.authority, ["SOA"], "{}", d.raw);

    // Static hosts, their plain names and PTR.
    assert_eq!(kdig(dns, &["printer.village.lan"]).rdata(), ["10.0.0.5"]);
    assert_eq!(kdig(dns, &["printer"]).rdata(), ["10.0.0.5"]);
    assert_eq!(
        kdig(dns, &["-x", "10.0.0.5"]).rdata(),
        ["printer.village.lan."]
    );

    // NXDOMAIN: plain names are never forwarded (domain_needed), private reverse names neither
    // (bogus_priv); a name outside the zone with no upstream is REFUSED, as dnsmasq does.
    assert_eq!(kdig(dns, &["nosuchhost"]).status, "NXDOMAIN");
    assert_eq!(kdig(dns, &["-x", "192.168.7.7"]).status, "NXDOMAIN");
    assert_eq!(kdig(dns, &["www.example.org"]).status, "REFUSED");

    // TCP.
    let d = kdig(dns, &["+tcp", "printer.village.lan"]);
    assert_eq!(d.rdata(), ["10.0.0.5"], "{}", d.raw);

    // Truncation: 40 addresses do not fit in 512 bytes; without EDNS the UDP answer is TC and
    // empty, and kdig's automatic retry over TCP gets all of them.
    let d = kdig(dns, &["+noedns", "+ignore", "big.village.lan"]);
    assert!(d.has_flag("tc"), "{}", d.raw);
    assert!(d.answers.is_empty(), "{}", d.raw);
    let d = kdig(dns, &["+noedns", "big.village.lan"]);
    assert_eq!(d.answers.len(), 40, "{}", d.raw);
    assert!(d.raw.contains("retrying over TCP"), "{}", d.raw);
}

#[test]
fn malformed_packets_are_dropped_and_the_server_keeps_answering() {
    let boma = Boma::start(&zone_config(), None);
    let dns = boma.dns_addr();
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut query = Message::new(0x5151, MessageType::Query, OpCode::Query);
    query.add_query(Query::query(
        Name::from_ascii("printer.village.lan.").expect("name"),
        RecordType::A,
    ));
    let good = query.to_vec().expect("encode");
    let mut cut = good.clone();
    cut.truncate(good.len() - 3);
    let mut response = good.clone();
    response[2] |= 0x80;
    for garbage in [
        &b"\x00"[..],
        &[0xff; 40],
        &cut,
        &response,
        b"not dns at all",
    ] {
        socket.send_to(garbage, dns).expect("send");
    }
    // Datagrams on loopback arrive in order and boma answers in order: had it answered any of
    // the garbage, that reply would come first.
    socket.send_to(&good, dns).expect("send");
    let mut buf = [0u8; 1500];
    let (n, _) = socket
        .recv_from(&mut buf)
        .expect("an answer to the good query");
    let reply = Message::from_vec(&buf[..n]).expect("reply");
    assert_eq!(reply.metadata.id, 0x5151);
    assert_eq!(reply.answers.len(), 1);
}

#[test]
fn clients_outside_allowed_networks_are_refused() {
    // boma on loopback, only 10.0.0.0/8 may ask.
    let cfg = zone_config().replace(
        "upstreams = []",
        "upstreams = []\nallowed_networks = [\"10.0.0.0/8\"]",
    );
    let boma = Boma::start(&cfg, None);
    let d = kdig(boma.dns_addr(), &["printer.village.lan"]);
    assert_eq!(d.status, "REFUSED", "{}", d.raw);
    assert!(d.answers.is_empty());

    // Only 127.0.0.1 may ask: a query from 127.0.0.2 is refused, one from 127.0.0.1 answered.
    let cfg = zone_config().replace(
        "upstreams = []",
        "upstreams = []\nallowed_networks = [\"127.0.0.1/32\"]",
    );
    let boma = Boma::start(&cfg, None);
    let d = kdig(boma.dns_addr(), &["-b", "127.0.0.2", "printer.village.lan"]);
    assert_eq!(d.status, "REFUSED", "{}", d.raw);
    let d = kdig(
        boma.dns_addr(),
        &["+tcp", "-b", "127.0.0.2", "printer.village.lan"],
    );
    assert_eq!(d.status, "REFUSED", "{}", d.raw);
    let d = kdig(boma.dns_addr(), &["-b", "127.0.0.1", "printer.village.lan"]);
    assert_eq!(d.rdata(), ["10.0.0.5"], "{}", d.raw);
}

/// DNS has a thread of its own: while a large configuration is being assembled (thousands of
/// regular expressions compiled, as after a storm of container events), queries are still
/// answered. Checked as an order of events in boma's log, not as a time: answers arrive between
/// the assembler's "assembling generation=N" and its "configuration applied generation=N".
#[test]
fn dns_answers_while_a_large_configuration_is_assembled() {
    const ROUTERS: usize = 3000;
    let cfg = format!(
        "{}\n[providers.file]\nfilename = \"{{dir}}/dynamic.toml\"\n",
        zone_config()
    );
    let small = "[http.services.s.loadBalancer]\n[[http.services.s.loadBalancer.servers]]\nurl = \"http://127.0.0.1:9\"\n";
    let boma = Boma::start(&cfg, Some(small));
    let dns = boma.dns_addr();
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut query = Message::new(0x4242, MessageType::Query, OpCode::Query);
    query.add_query(Query::query(
        Name::from_ascii("printer.village.lan.").expect("name"),
        RecordType::A,
    ));
    let query = query.to_vec().expect("encode");
    let ask = || {
        socket.send_to(&query, dns).expect("send");
        let mut buf = [0u8; 1500];
        let (n, _) = socket.recv_from(&mut buf).expect("an answer");
        assert_eq!(
            Message::from_vec(&buf[..n]).expect("reply").answers.len(),
            1
        );
    };
    ask();

    let mut big = String::from(small);
    for i in 0..ROUTERS {
        big.push_str(&format!(
            "[http.routers.r{i}]\nrule = 'HostRegexp(`^svc{i}-[a-z0-9]{{2,8}}\\.(alpha|beta|gamma)\\.example$`)'\nservice = \"s\"\n"
        ));
    }
    boma.write_dynamic(&big);
    let applied = format!("routers={ROUTERS}");
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let mut during = 0;
    loop {
        ask();
        let log = boma.stderr();
        // The last assemble started and not yet applied while this answer came back.
        let last_start = log.rfind("assembling generation=");
        let last_applied = log.rfind("configuration applied generation=");
        if last_start.is_some() && last_start > last_applied {
            during += 1;
        }
        if log.contains(&applied) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the large configuration was never applied:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        during >= 3,
        "only {during} answers while the assembler was busy: DNS waits for it"
    );
}
