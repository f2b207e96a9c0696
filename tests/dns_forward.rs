//! Forwarding as a client sees it, against upstreams the test starts on 127.0.0.x (never a real
//! resolver): answers cached (positive and negative), TCP fallback when the upstream truncates,
//! rebind protection (and its allowed domains), stale answers once the upstream is stopped,
//! strict order failing over to the next server, and real dnsmasq as the upstream.

mod dns_support;
mod support;

use std::net::IpAddr;
use std::time::Duration;

use dns_support::{Dnsmasq, Stub, StubAnswer, kdig};
use support::Boma;

fn config(upstreams: &[String], extra: &str) -> String {
    let list: Vec<String> = upstreams.iter().map(|u| format!("\"{u}\"")).collect();
    format!(
        r#"
[dns]
listen = ["127.0.0.1:0"]
zone = "village.lan"
address = "10.0.0.1"
upstreams = [{}]
upstream_timeout = "500ms"
rebind_allow = ["rebind-ok.test"]
{extra}
"#,
        list.join(", ")
    )
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

#[test]
fn forwards_caches_falls_back_to_tcp_filters_and_serves_stale() {
    let mut stub = Stub::start(
        [127, 0, 0, 2],
        &[
            ("www.example.test", StubAnswer::A(ip("93.184.216.34"), 2)),
            (
                "long.example.test",
                StubAnswer::A(ip("93.184.216.35"), 3600),
            ),
            ("gone.example.test", StubAnswer::NxDomain(300)),
            ("evil.example.test", StubAnswer::A(ip("192.168.1.1"), 60)),
            ("nas.rebind-ok.test", StubAnswer::A(ip("10.1.2.3"), 60)),
            ("big.example.test", StubAnswer::BigTxt(900)),
        ],
    );
    let boma = Boma::start(&config(&[stub.addr.to_string()], ""), None);
    let dns = boma.dns_addr();

    // Forwarded, then answered from the cache.
    let d = kdig(dns, &["www.example.test"]);
    assert_eq!(d.rdata(), ["93.184.216.34"], "{}", d.raw);
    assert!(!d.has_flag("aa") && d.has_flag("ra"), "{}", d.raw);
    let asked = stub.udp();
    assert_eq!(kdig(dns, &["long.example.test"]).rdata(), ["93.184.216.35"]);
    assert_eq!(kdig(dns, &["long.example.test"]).rdata(), ["93.184.216.35"]);
    assert_eq!(
        stub.udp(),
        asked + 1,
        "the second answer came from the cache"
    );

    // Negative answers are cached too.
    let before = stub.udp();
    for _ in 0..3 {
        let d = kdig(dns, &["gone.example.test"]);
        assert_eq!(d.status, "NXDOMAIN", "{}", d.raw);
    }
    assert_eq!(stub.udp(), before + 1);

    // Rebind protection: a private address from upstream is dropped, unless allowed.
    let d = kdig(dns, &["evil.example.test"]);
    assert_eq!(
        (d.status.as_str(), d.answers.len()),
        ("NOERROR", 0),
        "{}",
        d.raw
    );
    assert_eq!(kdig(dns, &["nas.rebind-ok.test"]).rdata(), ["10.1.2.3"]);

    // The upstream truncates over UDP: boma asks again over TCP and gets the whole answer.
    let d = kdig(dns, &["+tcp", "big.example.test", "TXT"]);
    assert_eq!(d.status, "NOERROR", "{}", d.raw);
    assert_eq!(d.answers.len(), 1, "{}", d.raw);
    assert!(d.answers[0].3.matches('x').count() >= 900, "{}", d.raw);
    assert!(stub.tcp() >= 1);

    // The uplink goes down after www's 2-second TTL ran out: the stale answer is served.
    std::thread::sleep(Duration::from_millis(2100));
    stub.stop_now();
    let d = kdig(dns, &["www.example.test"]);
    assert_eq!(d.rdata(), ["93.184.216.34"], "{}", d.raw);
    assert_eq!(
        d.answers[0].1, 30,
        "stale answers carry a 30s TTL: {}",
        d.raw
    );
    // What was never seen cannot be served stale.
    assert_eq!(kdig(dns, &["new.example.test"]).status, "SERVFAIL");
}

#[test]
fn strict_order_fails_over_and_forwards_to_dnsmasq() {
    // The first upstream is a port nobody listens on; the second is real dnsmasq.
    let dead = format!("127.0.0.3:{}", dns_support::free_port([127, 0, 0, 3]));
    let dnsmasq = Dnsmasq::start(
        [127, 0, 0, 4],
        &["--address=/dm.test/93.184.216.36", "--local-ttl=60"],
    );
    let cfg = config(&[dead, dnsmasq.addr.to_string()], "strict_order = true");
    let boma = Boma::start(&cfg, None);
    let d = kdig(boma.dns_addr(), &["www.dm.test"]);
    assert_eq!(d.rdata(), ["93.184.216.36"], "{}", d.raw);
    // Local names are never forwarded, whatever the upstream says.
    assert_eq!(
        kdig(boma.dns_addr(), &["dm.village.lan"]).rdata(),
        ["10.0.0.1"]
    );
}
