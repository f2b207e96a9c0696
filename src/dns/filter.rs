//! dnsmasq's safety rules as pure functions: which addresses are "private" for rebind
//! protection (`stop-dns-rebind`) and `bogus-priv`, and the rebind filter itself, which removes
//! private A/AAAA records from an upstream answer unless the name is under an allowed domain.
//!
//! The ranges are dnsmasq's (RFC 1918, loopback, "this network", link-local, the test nets,
//! broadcast; IPv6 unspecified, loopback, link-local, site-local, ULA and IPv4-mapped private)
//! plus 100.64.0.0/10 (shared address space, which community networks use inside). No I/O.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_proto::rr::{Name, RData, Record};

/// Whether `ip` is in a range that must not come from the public DNS.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => private_v4(v4),
        IpAddr::V6(v6) => private_v6(v6),
    }
}

fn private_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    o[0] == 0
        || o[0] == 10
        || o[0] == 127
        || (o[0] == 100 && (64..128).contains(&o[1]))
        || (o[0] == 169 && o[1] == 254)
        || (o[0] == 172 && (16..32).contains(&o[1]))
        || (o[0] == 192 && o[1] == 168)
        || (o[0] == 192 && o[1] == 0 && o[2] == 2)
        || (o[0] == 198 && o[1] == 51 && o[2] == 100)
        || (o[0] == 203 && o[1] == 0 && o[2] == 113)
        || ip == Ipv4Addr::BROADCAST
}

fn private_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return private_v4(v4);
    }
    let s0 = ip.segments()[0];
    ip.is_unspecified()
        || ip.is_loopback()
        || (s0 & 0xffc0) == 0xfe80 // link-local
        || (s0 & 0xffc0) == 0xfec0 // site-local
        || (s0 & 0xfe00) == 0xfc00 // unique local
        || (s0 == 0x2001 && ip.segments()[1] == 0x0db8) // documentation
}

/// For `bogus_priv`: whether `qname` is a reverse name (`in-addr.arpa`, `ip6.arpa`) inside a
/// private range.
pub fn is_private_reverse(qname: &Name) -> bool {
    qname
        .parse_arpa_name()
        .map(|net| is_private(net.network()))
        .unwrap_or(false)
}

/// Whether `qname` is one of `domains` or under one (all lower case, fully qualified).
pub fn under_any(qname: &Name, domains: &[Name]) -> bool {
    domains.iter().any(|d| d.zone_of(qname))
}

/// Removes the A/AAAA records pointing into private ranges; returns how many were removed.
pub fn drop_private(answers: &mut Vec<Record>) -> usize {
    let before = answers.len();
    answers.retain(|r| match &r.data {
        RData::A(a) => !private_v4(a.0),
        RData::AAAA(a) => !private_v6(a.0),
        _ => true,
    });
    before - answers.len()
}

#[cfg(test)]
mod tests {
    use hickory_proto::rr::rdata::{A, AAAA, CNAME};

    use super::*;

    #[test]
    fn ranges() {
        for private in [
            "10.1.2.3",
            "127.0.0.1",
            "0.0.0.0",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.1.1",
            "100.64.0.1",
            "100.127.255.255",
            "192.0.2.1",
            "255.255.255.255",
            "::",
            "::1",
            "fe80::1",
            "fec0::1",
            "fd00::1",
            "fc00::1",
            "::ffff:192.168.1.1",
            "2001:db8::1",
        ] {
            assert!(is_private(private.parse().expect("ip")), "{private}");
        }
        for public in [
            "1.1.1.1",
            "93.184.216.34",
            "172.32.0.1",
            "172.15.0.1",
            "100.128.0.1",
            "192.169.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(!is_private(public.parse().expect("ip")), "{public}");
        }
    }

    #[test]
    fn reverse_names() {
        let name = |s: &str| Name::from_ascii(s).expect("name");
        assert!(is_private_reverse(&name("7.1.168.192.in-addr.arpa.")));
        assert!(is_private_reverse(&name("168.192.in-addr.arpa.")));
        assert!(is_private_reverse(&name("1.0.0.127.in-addr.arpa.")));
        assert!(!is_private_reverse(&name("8.8.8.8.in-addr.arpa.")));
        assert!(!is_private_reverse(&name("example.org.")));
        let v6 = Name::from(IpAddr::from("fd00::5".parse::<Ipv6Addr>().expect("v6")));
        assert!(is_private_reverse(&v6));
        let allowed = [name("plex.direct.")];
        assert!(under_any(&name("x.plex.direct."), &allowed));
        assert!(under_any(&name("plex.direct."), &allowed));
        assert!(!under_any(&name("plex.directx."), &allowed));
    }

    #[test]
    fn drops_only_private_addresses() {
        let owner = Name::from_ascii("x.example.").expect("name");
        let rec = |d| Record::from_rdata(owner.clone(), 60, d);
        let mut answers = vec![
            rec(RData::CNAME(CNAME(owner.clone()))),
            rec(RData::A(A([192, 168, 1, 1].into()))),
            rec(RData::A(A([93, 184, 216, 34].into()))),
            rec(RData::AAAA(AAAA("fd00::1".parse().expect("v6")))),
        ];
        assert_eq!(drop_private(&mut answers), 2);
        assert_eq!(answers.len(), 2);
        assert_eq!(drop_private(&mut answers), 0);
    }
}
