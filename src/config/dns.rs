//! `[dns]`: boma's DNS server (snake_case keys, like `[limits]`): where it listens, the local zone
//! and what its names answer with, static hosts, upstream servers, the cache and the safety
//! switches that mirror dnsmasq (`domain_needed`, `bogus_priv`, rebind protection), the allowed
//! client networks and the bounds on work in progress.
//!
//! Types, defaults and checks only: the DNS part (`crate::dns`) reads these values; nothing here
//! binds a socket or reads `/etc/resolv.conf`. Checks that need positions are at the bottom, in
//! the same `Check` as the rest of the static configuration.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Duration;
use super::validate::{Check, is_ip_or_cidr};

/// `[dns]`: a caching, forwarding DNS server with a local zone. Off unless the section is present.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Dns {
    /// Where to listen, UDP and TCP on each address (default `["0.0.0.0:53"]`). Port 0 picks a
    /// free port (the same one for UDP and TCP).
    pub listen: Vec<SocketAddr>,
    /// The local zone (default `village.lan`): every name in it is answered here and never
    /// forwarded.
    pub zone: String,
    /// What the zone's names answer with: one IPv4 and/or one IPv6 address of the gateway;
    /// `"auto"`: the address of the interface the query came in on (the one whose subnet holds
    /// the client, read over netlink and followed as it changes; 127.0.0.1 for loopback
    /// clients). Empty: the specific (not 0.0.0.0 / ::) listen addresses.
    pub address: Vec<AnswerAddr>,
    /// Answer every name of the zone with `address` (dnsmasq's `address=/zone/ip`); false: only
    /// the apex, router Host names, static hosts and DHCP names exist, the rest is NXDOMAIN
    /// (default true).
    pub wildcard: bool,
    /// TTL of local answers (default 60s). Clients may keep a removed name this long.
    pub local_ttl: Duration,
    /// Static names: `name = ["ip", ...]`. A name without a dot is `name.<zone>` (and answers as
    /// a plain name too); PTR records are made for its addresses.
    pub hosts: BTreeMap<String, Vec<IpAddr>>,
    /// Upstream servers, `"IP"` or `"IP:port"`. Absent: the nameservers of the host's
    /// `/etc/resolv.conf`; empty: no forwarding.
    pub upstreams: Option<Vec<String>>,
    /// Try upstreams strictly in the order given; false: fastest recently answering first
    /// (default false, as dnsmasq).
    pub strict_order: bool,
    /// How long one upstream gets to answer before the next is tried (default 2s).
    pub upstream_timeout: Duration,
    /// Answers kept in the cache, positive and negative; 0 turns the cache off (default 1000).
    pub cache_size: usize,
    /// When every upstream fails, answer from expired cache entries (TTL 30s) (default true).
    pub serve_stale: bool,
    /// How long past its TTL an entry may still be served stale (default 24h).
    pub max_stale: Duration,
    /// Never forward names without a dot; answer NXDOMAIN (default true).
    pub domain_needed: bool,
    /// Answer reverse lookups of private ranges not known locally with NXDOMAIN instead of
    /// forwarding them (default true).
    pub bogus_priv: bool,
    /// Drop upstream A/AAAA answers that point into private, loopback or link-local ranges
    /// (default true).
    pub rebind_protection: bool,
    /// Domains (and their subdomains) whose upstream answers may point into private ranges.
    pub rebind_allow: Vec<String>,
    /// Clients that may query, as IPs or CIDRs, or `local`: loopback, IPv6 link-local and the
    /// subnets of the host's interfaces except the `[wan]` one (dnsmasq's `local-service`,
    /// followed as addresses change). Others get REFUSED. Default `["local"]`: never an open
    /// resolver on the WAN side.
    pub allowed_networks: Vec<String>,
    /// Forwarded queries waiting for an upstream at once; more get SERVFAIL (or a stale
    /// answer) (default 256).
    pub max_in_flight: usize,
    /// Open TCP client connections; more are closed at once (default 64).
    pub max_tcp_connections: usize,
    /// How long a TCP client connection may stay idle (default 10s).
    pub tcp_idle_timeout: Duration,
    /// Log one line per query (client, name, type, result, where it came from).
    pub query_log: bool,
    /// Write the query log to this file instead of standard output.
    pub query_log_file: Option<PathBuf>,
}

impl Default for Dns {
    fn default() -> Self {
        Self {
            listen: vec![SocketAddr::from(([0, 0, 0, 0], 53))],
            zone: "village.lan".into(),
            address: Vec::new(),
            wildcard: true,
            local_ttl: Duration::from_secs(60),
            hosts: BTreeMap::new(),
            upstreams: None,
            strict_order: false,
            upstream_timeout: Duration::from_secs(2),
            cache_size: 1000,
            serve_stale: true,
            max_stale: Duration::from_secs(24 * 3600),
            domain_needed: true,
            bogus_priv: true,
            rebind_protection: true,
            rebind_allow: Vec::new(),
            allowed_networks: vec![LOCAL.to_string()],
            max_in_flight: 256,
            max_tcp_connections: 64,
            tcp_idle_timeout: Duration::from_secs(10),
            query_log: false,
            query_log_file: None,
        }
    }
}

/// The `allowed_networks` entry for the host's own subnets (dnsmasq's `local-service`).
pub const LOCAL: &str = "local";

/// Largest accepted `cache_size`.
pub const MAX_CACHE_SIZE: usize = 1_000_000;
/// Largest accepted `local_ttl`, in seconds (one day).
pub const MAX_LOCAL_TTL: u64 = 86_400;

/// One `[dns] address` entry: an IP, or `auto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerAddr {
    Auto,
    Ip(IpAddr),
}

impl From<IpAddr> for AnswerAddr {
    fn from(ip: IpAddr) -> Self {
        AnswerAddr::Ip(ip)
    }
}

impl<'de> Deserialize<'de> for AnswerAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.trim().eq_ignore_ascii_case("auto") {
            return Ok(AnswerAddr::Auto);
        }
        s.trim()
            .parse()
            .map(AnswerAddr::Ip)
            .map_err(|_| serde::de::Error::custom(format!("`{s}` is not an IP address or `auto`")))
    }
}

impl Serialize for AnswerAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            AnswerAddr::Auto => s.serialize_str("auto"),
            AnswerAddr::Ip(ip) => s.collect_str(ip),
        }
    }
}

impl Dns {
    /// `address = "auto"`: answer with the address of the interface the query came in on.
    pub fn auto_address(&self) -> bool {
        self.address.contains(&AnswerAddr::Auto)
    }

    /// `allowed_networks` names `local`.
    pub fn local_service(&self) -> bool {
        self.allowed_networks.iter().any(|n| n == LOCAL)
    }

    /// `allowed_networks` without `local`: the IPs and CIDRs.
    pub fn allowed_cidrs(&self) -> Vec<String> {
        (self.allowed_networks.iter())
            .filter(|n| *n != LOCAL)
            .cloned()
            .collect()
    }

    /// The addresses local names answer with: `address`, or else the specific listen IPs.
    /// With `auto`, the specific listen IPs are the fallback for clients on no known subnet.
    pub fn answer_addresses(&self) -> Vec<IpAddr> {
        let fixed: Vec<IpAddr> = (self.address.iter())
            .filter_map(|a| match a {
                AnswerAddr::Ip(ip) => Some(*ip),
                AnswerAddr::Auto => None,
            })
            .collect();
        if !fixed.is_empty() {
            return fixed;
        }
        let mut out: Vec<IpAddr> = Vec::new();
        for ip in self.listen.iter().map(SocketAddr::ip) {
            if !ip.is_unspecified() && !out.contains(&ip) {
                out.push(ip);
            }
        }
        out
    }

    /// The configured upstreams as socket addresses (port 53 when none is given); `None` when
    /// the key is absent (use the host's resolv.conf). Entries that do not parse are skipped
    /// (validation reports them).
    pub fn upstream_addrs(&self) -> Option<Vec<SocketAddr>> {
        let list = self.upstreams.as_ref()?;
        Some(list.iter().filter_map(|s| parse_upstream(s)).collect())
    }
}

/// `"192.0.2.1"`, `"192.0.2.1:5353"`, `"2001:db8::1"`, `"[2001:db8::1]:53"`.
pub fn parse_upstream(s: &str) -> Option<SocketAddr> {
    let s = s.trim();
    s.parse::<SocketAddr>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 53)))
}

/// A domain name as DNS writes it: dot-separated labels of 1 to 63 letters, digits, `-` or `_`,
/// 253 characters at most; one trailing dot allowed.
pub fn is_domain_name(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

impl Check<'_> {
    /// Every problem of the `[dns]` section.
    pub(super) fn dns(&mut self, dns: &Dns) {
        self.dns_addresses(dns);
        self.dns_lists(dns);
        self.dns_bounds(dns);
    }

    /// Where it listens and what local names answer with.
    fn dns_addresses(&mut self, dns: &Dns) {
        if dns.listen.is_empty() {
            self.value(&["dns", "listen"], "`listen` needs at least one address");
        }
        for (i, addr) in dns.listen.iter().enumerate() {
            let earlier = dns.listen[..i]
                .iter()
                .any(|a| a == addr && addr.port() != 0);
            if earlier {
                let index = i.to_string();
                self.value(
                    &["dns", "listen", &index],
                    format!("{addr} is listed twice"),
                );
            }
        }
        if !is_domain_name(&dns.zone) {
            self.value(
                &["dns", "zone"],
                format!("`{}` is not a domain name like village.lan", dns.zone),
            );
        }
        if dns.auto_address() && dns.address.len() > 1 {
            self.value(
                &["dns", "address"],
                "`auto` stands alone: the address of the receiving interface",
            );
        }
        if dns.answer_addresses().is_empty() && !dns.auto_address() {
            self.key(
                &["dns"],
                "set `address` (the gateway's IP that local names answer with): no listen \
                 address is a specific IP",
            );
        }
        let families = |v4: bool| {
            (dns.address.iter())
                .filter(|a| matches!(a, AnswerAddr::Ip(ip) if ip.is_ipv4() == v4))
                .count()
        };
        if families(true) > 1 || families(false) > 1 {
            self.value(
                &["dns", "address"],
                "`address` takes at most one IPv4 and one IPv6 address",
            );
        }
    }

    /// Static hosts, upstreams, who may ask, and the rebinding exceptions.
    fn dns_lists(&mut self, dns: &Dns) {
        for (name, ips) in &dns.hosts {
            if !is_domain_name(name) {
                self.key(
                    &["dns", "hosts", name],
                    format!("`{name}` is not a host name"),
                );
            } else if ips.is_empty() {
                self.value(
                    &["dns", "hosts", name],
                    format!("host `{name}` needs at least one address"),
                );
            }
        }
        for (i, up) in dns.upstreams.iter().flatten().enumerate() {
            if parse_upstream(up).is_none() {
                let index = i.to_string();
                self.value(
                    &["dns", "upstreams", &index],
                    format!("`{up}` is not an IP address or IP:port"),
                );
            }
        }
        if dns.allowed_networks.is_empty() {
            self.value(
                &["dns", "allowed_networks"],
                "`allowed_networks` is empty, so every query would be refused; to answer \
                 everyone, write [\"0.0.0.0/0\", \"::/0\"]",
            );
        }
        for (i, net) in dns.allowed_networks.iter().enumerate() {
            if net != LOCAL && !is_ip_or_cidr(net) {
                let index = i.to_string();
                self.value(
                    &["dns", "allowed_networks", &index],
                    format!("`{net}` is not `local`, an IP address or a CIDR range"),
                );
            }
        }
        for (i, domain) in dns.rebind_allow.iter().enumerate() {
            if !is_domain_name(domain) {
                let index = i.to_string();
                self.value(
                    &["dns", "rebind_allow", &index],
                    format!("`{domain}` is not a domain name"),
                );
            }
        }
    }

    /// Limits, timeouts and TTLs, and the query log.
    fn dns_bounds(&mut self, dns: &Dns) {
        for (key, n) in [
            ("max_in_flight", dns.max_in_flight),
            ("max_tcp_connections", dns.max_tcp_connections),
        ] {
            if n == 0 {
                self.value(&["dns", key], format!("`{key}` must be at least 1"));
            }
        }
        if dns.cache_size > MAX_CACHE_SIZE {
            self.value(
                &["dns", "cache_size"],
                format!("`cache_size` must be at most {MAX_CACHE_SIZE}"),
            );
        }
        for (key, d) in [
            ("upstream_timeout", dns.upstream_timeout),
            ("tcp_idle_timeout", dns.tcp_idle_timeout),
        ] {
            self.positive(&["dns", key], d);
        }
        self.not_negative(&["dns", "max_stale"], dns.max_stale);
        self.not_negative(&["dns", "local_ttl"], dns.local_ttl);
        if dns.local_ttl.to_std().as_secs() > MAX_LOCAL_TTL {
            self.value(
                &["dns", "local_ttl"],
                format!("`local_ttl` must be at most {MAX_LOCAL_TTL}s"),
            );
        }
        if dns.query_log_file.is_some() && !dns.query_log {
            self.value(
                &["dns", "query_log_file"],
                "`query_log_file` is set but `query_log` is false",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::parse;

    fn dns(src: &str) -> Dns {
        match parse(src, Path::new("boma.toml")) {
            Ok(c) => c.dns.expect("[dns] present"),
            Err(e) => panic!("unexpected errors:\n{e}"),
        }
    }

    fn problems(src: &str) -> Vec<String> {
        match parse(src, Path::new("boma.toml")) {
            Ok(c) => panic!("expected errors, parsed {:?}", c.dns),
            Err(e) => e
                .iter()
                .map(|e| format!("{}:{}: {}", e.line, e.col, e.message))
                .collect(),
        }
    }

    #[test]
    fn defaults() {
        let d = dns("[dns]\naddress = \"192.168.1.1\"\n");
        assert_eq!(d.listen, [SocketAddr::from(([0, 0, 0, 0], 53))]);
        assert_eq!(d.zone, "village.lan");
        assert!(d.wildcard && d.serve_stale && d.domain_needed && d.bogus_priv);
        assert!(d.rebind_protection && !d.strict_order && !d.query_log);
        assert_eq!(d.upstreams, None);
        assert_eq!(d.upstream_addrs(), None);
        assert_eq!(d.cache_size, 1000);
        assert_eq!(d.local_ttl, Duration::from_secs(60));
        assert_eq!(d.answer_addresses(), [IpAddr::from([192, 168, 1, 1])]);
        assert_eq!(d.allowed_networks, ["local"]);
        assert!(d.local_service() && d.allowed_cidrs().is_empty());
        assert!(parse("", Path::new("b.toml")).unwrap().dns.is_none());
    }

    #[test]
    fn a_full_section() {
        let d = dns(r#"
[DNS]
listen = ["127.0.0.1:5353", "[::1]:5353"]
zone = "inethilocal.net"
address = ["10.0.0.1", "fd00::1"]
wildcard = false
local_ttl = "5m"
upstreams = ["192.0.2.1", "192.0.2.2:5300", "[2001:db8::1]:53", "2001:db8::2"]
Strict_Order = true
cache_size = 0
rebind_allow = ["plex.direct"]
allowed_networks = "10.0.0.0/8, 127.0.0.1"
query_log = true
query_log_file = "/var/log/dns.log"

[dns.hosts]
printer = "10.0.0.5"
nas = ["10.0.0.6", "fd00::6"]
"#);
        assert_eq!(d.zone, "inethilocal.net");
        assert_eq!(d.listen.len(), 2);
        assert!(!d.wildcard && d.strict_order && d.query_log);
        assert_eq!(d.local_ttl, Duration::from_secs(300));
        assert_eq!(d.hosts["printer"], [IpAddr::from([10, 0, 0, 5])]);
        assert_eq!(d.hosts["nas"].len(), 2);
        assert_eq!(d.allowed_networks, ["10.0.0.0/8", "127.0.0.1"]);
        let ups: Vec<String> = d
            .upstream_addrs()
            .unwrap()
            .iter()
            .map(|a| a.to_string())
            .collect();
        assert_eq!(
            ups,
            [
                "192.0.2.1:53",
                "192.0.2.2:5300",
                "[2001:db8::1]:53",
                "[2001:db8::2]:53"
            ]
        );
    }

    #[test]
    fn documented_example_shows_the_defaults() {
        let c = parse(
            include_str!("../../docs/boma.example.toml"),
            Path::new("boma.example.toml"),
        )
        .expect("example parses");
        let expected = Dns {
            address: vec![IpAddr::from([192, 168, 1, 1]).into()],
            ..Dns::default()
        };
        assert_eq!(c.dns, Some(expected));
    }

    #[test]
    fn embedded_default_serves_dns_on_loopback() {
        let c = parse(crate::config::DEFAULT_TOML, Path::new("<embedded default>"))
            .expect("default parses");
        let d = c.dns.expect("[dns] in the default");
        assert_eq!(d.listen, [SocketAddr::from(([127, 0, 0, 1], 8053))]);
        assert!(
            d.listen
                .iter()
                .all(|a| a.ip().is_loopback() && a.port() > 1024)
        );
        assert_eq!(d.answer_addresses(), [IpAddr::from([127, 0, 0, 1])]);
        assert_eq!(d.zone, "village.lan");
    }

    #[test]
    fn address_falls_back_to_specific_listen_addresses() {
        let d = dns("[dns]\nlisten = [\"0.0.0.0:53\", \"10.1.1.1:53\", \"10.1.1.1:5353\"]\n");
        assert_eq!(d.answer_addresses(), [IpAddr::from([10, 1, 1, 1])]);
    }

    #[test]
    fn problems_are_positioned() {
        let src = r#"[dns]
listen = []
zone = "bad zone"
upstreams = ["1.2.3.4", "nope"]
allowed_networks = ["10.0.0.0/33"]
rebind_allow = ["-x-"]
max_in_flight = 0
upstream_timeout = "0s"
cache_size = 2000000
local_ttl = "48h"
query_log_file = "q.log"
[dns.hosts]
"bad host" = "10.0.0.1"
"#;
        let found = problems(src);
        let expect = [
            "1:2: set `address`",
            "2:10: `listen` needs at least one address",
            "3:8: `bad zone` is not a domain name",
            "4:25: `nope` is not an IP address",
            "5:21: `10.0.0.0/33` is not `local`, an IP address or a CIDR range",
            "6:17: `-x-` is not a domain name",
            "7:17: `max_in_flight` must be at least 1",
            "8:20: `upstream_timeout` must be greater than zero",
            "9:14: `cache_size` must be at most",
            "10:13: `local_ttl` must be at most",
            "11:18: `query_log_file` is set but",
            "13:1: `bad host` is not a host name",
        ];
        assert_eq!(found.len(), expect.len(), "{found:#?}");
        for (f, e) in found.iter().zip(expect) {
            assert!(f.starts_with(e), "{f} does not start with {e}\n{found:#?}");
        }
    }

    #[test]
    fn type_errors_and_unknown_keys() {
        let found = problems("[dns]\naddress = \"10.0.0.300\"\nlisten = [\"x\"]\nzones = \"a\"\n");
        assert_eq!(found.len(), 3, "{found:#?}");
        assert!(found.iter().any(|f| f.starts_with("2:11:")), "{found:#?}");
        assert!(found.iter().any(|f| f.starts_with("3:11:")), "{found:#?}");
        assert!(
            found
                .iter()
                .any(|f| f.starts_with("4:1:") && f.contains("did you mean `zone`")),
            "{found:#?}"
        );
        let found = problems("[dns]\naddress = [\"10.0.0.1\", \"10.0.0.2\"]\n");
        assert!(found[0].contains("at most one IPv4"), "{found:#?}");
    }

    #[test]
    fn domain_names() {
        for ok in ["village.lan", "a", "x-1.b_c.lan.", "inethilocal.net"] {
            assert!(is_domain_name(ok), "{ok}");
        }
        for bad in ["", ".", "a..b", "-a.lan", "a-.lan", "a b", &"a".repeat(64)] {
            assert!(!is_domain_name(bad), "{bad}");
        }
        assert_eq!(
            parse_upstream(" 10.0.0.1 "),
            Some(([10, 0, 0, 1], 53).into())
        );
        assert_eq!(parse_upstream("10.0.0.1:x"), None);
    }
}
