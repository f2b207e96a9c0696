//! The local zone: an immutable table of the names boma answers itself, built by the pure
//! [`LocalZone::build`] from the `[dns]` config, the router `Host` names of the current snapshot
//! and the DHCP lease names, and swapped whole (ArcSwap) by the zone task when one of them
//! changes. Lookups never allocate a lock and never block.
//!
//! What it answers (dnsmasq's `address=/zone/ip` plus `/etc/hosts`-like names):
//! - the apex: SOA, NS (`ns.<zone>`), A/AAAA with the gateway address;
//! - names, in order of precedence: static hosts, router Host names inside the zone (→ the
//!   gateway address), DHCP names `name.<zone>`; then, with `wildcard`, every other name of the
//!   zone (→ the gateway address), without it NXDOMAIN;
//! - plain names (no dot) of static hosts and DHCP leases;
//! - PTR for the addresses of static hosts and DHCP leases.
//!
//! A name of the zone never leaves this module unanswered: it is NXDOMAIN or NODATA (with the
//! SOA in the authority section), so it is never forwarded. Building is pure: no clock, no I/O.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, AAAA, NS, PTR, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::leases::LeaseName;

/// Names kept at most (static hosts, router names and leases together); more are dropped.
pub const MAX_NAMES: usize = 100_000;

/// The configured part of the zone.
#[derive(Debug, Clone, PartialEq)]
pub struct ZoneSpec {
    /// The zone's apex, lower case, fully qualified.
    pub origin: Name,
    /// The gateway's addresses (at most one per family).
    pub addrs: Vec<IpAddr>,
    /// TTL of every local answer, in seconds.
    pub ttl: u32,
    /// Every name of the zone exists (answers with `addrs`).
    pub wildcard: bool,
    /// Static hosts as configured (`printer`, `nas.other.lan`).
    pub hosts: Vec<(String, Vec<IpAddr>)>,
}

/// What the zone says about a query.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalAnswer {
    pub rcode: ResponseCode,
    pub answers: Vec<Record>,
    pub authority: Vec<Record>,
}

/// The names boma answers itself; see the module docs.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalZone {
    spec: ZoneSpec,
    soa: Record,
    ns_name: Name,
    /// Fully qualified lower-case name → addresses.
    names: HashMap<Name, Vec<IpAddr>>,
    /// `in-addr.arpa` / `ip6.arpa` name → the name it points to.
    ptr: HashMap<Name, Name>,
}

/// `name` as a fully qualified, lower-case DNS name, if it is one.
pub fn fqdn(name: &str) -> Option<Name> {
    let name = name.trim().trim_end_matches('.');
    if name.is_empty() || !crate::config::is_domain_name(name) {
        return None;
    }
    let mut n = Name::from_ascii(name).ok()?.to_lowercase();
    n.set_fqdn(true);
    Some(n)
}

/// A DHCP client's host name as one label (`Laptop` → `laptop`; `pc.village.lan` → `pc` when
/// the zone is `village.lan`), if it is a valid one.
fn lease_label(hostname: &str, origin: &Name) -> Option<Name> {
    let name = fqdn(hostname)?;
    let in_zone = name.num_labels() == origin.num_labels() + 1 && origin.zone_of(&name);
    if name.num_labels() != 1 && !in_zone {
        return None;
    }
    let mut label = Name::from_labels(name.iter().take(1)).ok()?;
    label.set_fqdn(true);
    Some(label)
}

impl LocalZone {
    /// Build the zone from its spec, the router Host names and the DHCP lease names. `serial` is
    /// the SOA serial (the caller bumps it on every rebuild).
    pub fn build(
        spec: &ZoneSpec,
        router_hosts: &BTreeSet<String>,
        leases: &[LeaseName],
        serial: u32,
    ) -> LocalZone {
        let origin = &spec.origin;
        let child = |label: &str| -> Option<Name> {
            Name::from_ascii(label)
                .ok()
                .and_then(|l| l.append_domain(origin).ok())
                .map(|n| n.to_lowercase())
        };
        let ns_name = child("ns").unwrap_or_else(|| origin.clone());
        let hostmaster = child("hostmaster").unwrap_or_else(|| origin.clone());
        let soa = Record::from_rdata(
            origin.clone(),
            spec.ttl,
            RData::SOA(SOA::new(
                ns_name.clone(),
                hostmaster,
                serial,
                1200,
                180,
                1_209_600,
                spec.ttl,
            )),
        );
        let mut zone = LocalZone {
            spec: spec.clone(),
            soa,
            ns_name,
            names: HashMap::new(),
            ptr: HashMap::new(),
        };
        // Static hosts first: they win over everything else.
        for (name, ips) in &spec.hosts {
            let Some(name) = fqdn(name) else { continue };
            if name.num_labels() == 1
                && let Ok(full) = name.clone().append_domain(origin)
            {
                zone.add(full, ips, true);
            }
            zone.add(name, ips, true);
        }
        // Router names inside the zone answer with the gateway (where the proxy listens). With
        // the wildcard on, the wildcard gives that same answer: they are only kept out of the
        // DHCP names below, not stored (a thousand routers would cost ~200 KiB of names).
        let mut reserved = HashSet::new();
        for host in router_hosts {
            let Some(name) = fqdn(host) else { continue };
            if !origin.zone_of(&name) {
                continue;
            }
            if spec.wildcard {
                reserved.insert(name);
            } else {
                // No addresses of its own: "the gateway", resolved per query.
                zone.add(name, &[], false);
            }
        }
        // DHCP names last: a client cannot take a service's or a static name.
        for lease in leases {
            let Some(label) = lease_label(&lease.hostname, origin) else {
                continue;
            };
            if let Ok(full) = label.clone().append_domain(origin)
                && !reserved.contains(&full)
                && zone.add(full, &[lease.addr], true)
            {
                zone.add(label, &[lease.addr], false);
            }
        }
        zone
    }

    /// Adds `name` unless it is already there or the table is full; makes PTRs for its
    /// addresses when `ptr`. Returns whether it was added.
    fn add(&mut self, name: Name, ips: &[IpAddr], ptr: bool) -> bool {
        if self.names.contains_key(&name) || self.names.len() >= MAX_NAMES {
            return false;
        }
        if ptr {
            for ip in ips {
                self.ptr
                    .entry(Name::from(*ip))
                    .or_insert_with(|| name.clone());
            }
        }
        self.names.insert(name, ips.to_vec());
        true
    }

    /// The apex of the zone.
    pub fn origin(&self) -> &Name {
        &self.spec.origin
    }

    /// Every name the zone holds with its addresses (empty: the gateway's, per query), sorted;
    /// and whether the wildcard answers the rest.
    pub fn entries(&self) -> (Vec<(String, Vec<IpAddr>)>, bool) {
        let mut out: Vec<(String, Vec<IpAddr>)> = (self.names.iter())
            .map(|(n, ips)| (n.to_utf8().trim_end_matches('.').to_string(), ips.clone()))
            .collect();
        out.sort();
        (out, self.spec.wildcard)
    }

    /// How many names the zone holds (besides the wildcard).
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True when the zone holds no name (besides the apex and the wildcard).
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The answer to `qname` (lower case) / `qtype`, or `None` when the name is not local and
    /// may be forwarded. `owner` is the name as asked (answers echo its case).
    ///
    /// `gateway` replaces the spec's addresses for the gateway's own names (apex, wildcard, router
    /// names): the receiving interface's address with `[dns] address = "auto"`.
    pub fn lookup(
        &self,
        qname: &Name,
        owner: &Name,
        qtype: RecordType,
        gateway: Option<&[IpAddr]>,
    ) -> Option<LocalAnswer> {
        let origin = &self.spec.origin;
        let in_zone = origin.zone_of(qname);
        let gateway = gateway.unwrap_or(&self.spec.addrs);
        if let Some(ips) = self.names.get(qname) {
            let ips = if ips.is_empty() { gateway } else { ips };
            return Some(self.addresses(owner, ips, qtype, in_zone));
        }
        if qname == origin {
            let mut answer = self.addresses(owner, gateway, qtype, true);
            let extra = match qtype {
                RecordType::SOA => vec![self.soa.clone()],
                RecordType::NS => vec![self.ns(owner)],
                RecordType::ANY => vec![self.soa.clone(), self.ns(owner)],
                _ => Vec::new(),
            };
            if !extra.is_empty() {
                answer.authority.clear();
                answer.answers.extend(extra);
            }
            return Some(answer);
        }
        if in_zone {
            if self.spec.wildcard || *qname == self.ns_name {
                return Some(self.addresses(owner, gateway, qtype, true));
            }
            return Some(LocalAnswer {
                rcode: ResponseCode::NXDomain,
                answers: Vec::new(),
                authority: vec![self.soa.clone()],
            });
        }
        if qtype == RecordType::PTR
            && let Some(target) = self.ptr.get(qname)
        {
            let record = Record::from_rdata(
                owner.clone(),
                self.spec.ttl,
                RData::PTR(PTR(target.clone())),
            );
            return Some(LocalAnswer {
                rcode: ResponseCode::NoError,
                answers: vec![record],
                authority: Vec::new(),
            });
        }
        None
    }

    fn ns(&self, owner: &Name) -> Record {
        Record::from_rdata(
            owner.clone(),
            self.spec.ttl,
            RData::NS(NS(self.ns_name.clone())),
        )
    }

    /// The A/AAAA records of `ips` that match `qtype`; NODATA (with the SOA when `in_zone`)
    /// when none does.
    fn addresses(
        &self,
        owner: &Name,
        ips: &[IpAddr],
        qtype: RecordType,
        in_zone: bool,
    ) -> LocalAnswer {
        let ttl = self.spec.ttl;
        let answers: Vec<Record> =
            ips.iter()
                .filter_map(|ip| match (ip, qtype) {
                    (IpAddr::V4(v4), RecordType::A | RecordType::ANY) => {
                        Some(Record::from_rdata(owner.clone(), ttl, RData::A(A(*v4))))
                    }
                    (IpAddr::V6(v6), RecordType::AAAA | RecordType::ANY) => Some(
                        Record::from_rdata(owner.clone(), ttl, RData::AAAA(AAAA(*v6))),
                    ),
                    _ => None,
                })
                .collect();
        let authority = if answers.is_empty() && in_zone {
            vec![self.soa.clone()]
        } else {
            Vec::new()
        };
        LocalAnswer {
            rcode: ResponseCode::NoError,
            answers,
            authority,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Name {
        fqdn(s).expect("test name")
    }

    fn spec(wildcard: bool) -> ZoneSpec {
        ZoneSpec {
            origin: name("village.lan"),
            addrs: vec![IpAddr::from([10, 0, 0, 1]), "fd00::1".parse().expect("v6")],
            ttl: 60,
            wildcard,
            hosts: vec![
                ("printer".into(), vec![IpAddr::from([10, 0, 0, 5])]),
                ("nas.other.lan".into(), vec![IpAddr::from([10, 0, 0, 6])]),
            ],
        }
    }

    fn zone(wildcard: bool) -> LocalZone {
        let hosts: BTreeSet<String> = ["app.village.lan", "App2.Village.Lan", "web.example.org"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let leases = vec![
            LeaseName::new("Laptop", IpAddr::from([10, 0, 0, 50])),
            LeaseName::new("printer", IpAddr::from([10, 0, 0, 51])),
            LeaseName::new("app", IpAddr::from([10, 0, 0, 52])),
            LeaseName::new("bad name!", IpAddr::from([10, 0, 0, 53])),
            LeaseName::new("phone.village.lan", IpAddr::from([10, 0, 0, 54])),
        ];
        LocalZone::build(&spec(wildcard), &hosts, &leases, 7)
    }

    /// `(rcode, answers as "TYPE rdata", authority types)`.
    fn ask(
        z: &LocalZone,
        q: &str,
        t: RecordType,
    ) -> Option<(ResponseCode, Vec<String>, Vec<RecordType>)> {
        let n = name(q);
        z.lookup(&n, &n, t, None).map(|a| {
            (
                a.rcode,
                a.answers
                    .iter()
                    .map(|r| format!("{} {}", r.record_type(), r.data))
                    .collect(),
                a.authority.iter().map(Record::record_type).collect(),
            )
        })
    }

    /// Question, type, expected `(rcode, answers, authority types)` (`None`: not local).
    type Row = (
        &'static str,
        RecordType,
        Option<(ResponseCode, Vec<&'static str>, Vec<RecordType>)>,
    );

    #[test]
    fn table() {
        use RecordType::*;
        let soa = vec![SOA];
        let ok = ResponseCode::NoError;
        let z = zone(true);
        let rows: Vec<Row> = vec![
            (
                "anything.village.lan",
                A,
                Some((ok, vec!["A 10.0.0.1"], vec![])),
            ),
            (
                "a.b.village.lan",
                AAAA,
                Some((ok, vec!["AAAA fd00::1"], vec![])),
            ),
            ("x.village.lan", MX, Some((ok, vec![], soa.clone()))),
            ("village.lan", A, Some((ok, vec!["A 10.0.0.1"], vec![]))),
            (
                "village.lan",
                NS,
                Some((ok, vec!["NS ns.village.lan."], vec![])),
            ),
            (
                "printer.village.lan",
                A,
                Some((ok, vec!["A 10.0.0.5"], vec![])),
            ),
            ("printer", A, Some((ok, vec!["A 10.0.0.5"], vec![]))),
            ("printer.village.lan", AAAA, Some((ok, vec![], soa.clone()))),
            ("nas.other.lan", A, Some((ok, vec!["A 10.0.0.6"], vec![]))),
            ("nas.other.lan", AAAA, Some((ok, vec![], vec![]))),
            (
                "laptop.village.lan",
                A,
                Some((ok, vec!["A 10.0.0.50"], vec![])),
            ),
            ("laptop", A, Some((ok, vec!["A 10.0.0.50"], vec![]))),
            ("phone", A, Some((ok, vec!["A 10.0.0.54"], vec![]))),
            // A DHCP client cannot take a router's name.
            ("app.village.lan", A, Some((ok, vec!["A 10.0.0.1"], vec![]))),
            ("app", A, None),
            (
                "50.0.0.10.in-addr.arpa",
                PTR,
                Some((ok, vec!["PTR laptop.village.lan."], vec![])),
            ),
            (
                "5.0.0.10.in-addr.arpa",
                PTR,
                Some((ok, vec!["PTR printer.village.lan."], vec![])),
            ),
            ("51.0.0.10.in-addr.arpa", PTR, None),
            ("99.0.0.10.in-addr.arpa", PTR, None),
            ("web.example.org", A, None),
            ("example.org", A, None),
            ("plain", A, None),
        ];
        for (q, t, want) in rows {
            let want = want.map(|(c, a, s)| (c, a.iter().map(|s| s.to_string()).collect(), s));
            assert_eq!(ask(&z, q, t), want, "{q} {t}");
        }
        let (rcode, answers, _) = ask(&z, "village.lan", SOA).expect("soa");
        assert_eq!(rcode, ok);
        assert!(
            answers[0].starts_with("SOA ns.village.lan. hostmaster.village.lan. 7 "),
            "{answers:?}"
        );
    }

    #[test]
    fn without_wildcard_only_known_names_exist() {
        use RecordType::*;
        let z = zone(false);
        let nx = ask(&z, "other.village.lan", A).expect("local");
        assert_eq!((nx.0, nx.2), (ResponseCode::NXDomain, vec![SOA]));
        assert_eq!(
            ask(&z, "app2.village.lan", A).expect("router").1,
            ["A 10.0.0.1"]
        );
        assert_eq!(ask(&z, "ns.village.lan", A).expect("ns").1, ["A 10.0.0.1"]);
        assert_eq!(ask(&z, "village.lan", A).expect("apex").1, ["A 10.0.0.1"]);
    }

    #[test]
    fn answers_echo_the_asked_case_and_zones_compare() {
        let z = zone(true);
        let asked = Name::from_ascii("PrInTeR.Village.LAN.").expect("name");
        let a = z
            .lookup(&asked.to_lowercase(), &asked, RecordType::A, None)
            .expect("local");
        assert_eq!(a.answers[0].name.to_string(), "PrInTeR.Village.LAN.");
        assert_eq!(z, zone(true));
        assert_ne!(z, zone(false));
        assert_eq!(z.origin(), &name("village.lan"));
        assert!(!z.is_empty());
    }

    #[test]
    fn names_are_bounded() {
        let leases: Vec<LeaseName> = (0..MAX_NAMES + 10)
            .map(|i| LeaseName::new(&format!("h{i}"), IpAddr::from([10, 1, 0, 1])))
            .collect();
        let z = LocalZone::build(&spec(true), &BTreeSet::new(), &leases, 1);
        assert_eq!(z.len(), MAX_NAMES);
    }
}
