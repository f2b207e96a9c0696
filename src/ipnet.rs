//! IP networks as Traefik reads them (`ClientIP`, `ipAllowList`, `trustedIPs`): a bare address
//! or a CIDR, IPv4 and IPv4-mapped IPv6 treated as the same address. One implementation shared by
//! the rule language, the middlewares and the entrypoints; parsing happens at configuration time
//! and `contains` does no allocation.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One network: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Net {
    addr: IpAddr,
    prefix: u8,
}

/// Why a network did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` {reason}")]
pub struct NetError {
    pub value: String,
    pub reason: &'static str,
}

/// The IPv4 netmask of a prefix length, as a number (`/24` → 0xffff_ff00).
pub fn mask32(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix.min(32)))
    }
}

fn mask128(prefix: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(prefix.min(128)))
    }
}

impl Net {
    /// Parse `10.0.0.0/8`, `192.168.1.7`, `fd00::/8`, `::1`. An IPv4-mapped IPv6 network with a
    /// prefix of at least 96 is read as the IPv4 network it maps (as Go does).
    pub fn parse(s: &str) -> Result<Net, NetError> {
        let err = |reason| NetError {
            value: s.to_string(),
            reason,
        };
        let (addr_s, prefix_s) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr_s.parse().map_err(|_| {
            err(if prefix_s.is_some() {
                "is not a CIDR: its address is not an IP address"
            } else {
                "is not an IP address or a CIDR (such as 192.168.1.0/24 or fd00::/8)"
            })
        })?;
        let bits: u8 = if addr.is_ipv4() { 32 } else { 128 };
        let range = if bits == 32 {
            "has a prefix length that is not a number from 0 to 32"
        } else {
            "has a prefix length that is not a number from 0 to 128"
        };
        let prefix = match prefix_s {
            None => bits,
            Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().map_err(|_| err(range))?
            }
            Some(_) => return Err(err(range)),
        };
        if prefix > bits {
            return Err(err(range));
        }
        Ok(match addr {
            IpAddr::V6(v6) if prefix >= 96 && v6.to_ipv4_mapped().is_some() => Net {
                addr: IpAddr::V4(v6.to_ipv4_mapped().unwrap_or(Ipv4Addr::UNSPECIFIED)),
                prefix: prefix - 96,
            }
            .normalized(),
            _ => Net { addr, prefix }.normalized(),
        })
    }

    fn normalized(self) -> Net {
        let addr = match self.addr {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask32(self.prefix))),
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask128(self.prefix))),
        };
        Net { addr, ..self }
    }

    /// Does the network contain `ip`? IPv4-mapped IPv6 addresses count as IPv4.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(n), IpAddr::V4(a)) => u32::from(a) & mask32(self.prefix) == u32::from(n),
            (IpAddr::V6(n), IpAddr::V6(a)) => u128::from(a) & mask128(self.prefix) == u128::from(n),
            _ => false,
        }
    }
}

/// A list of networks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpSet {
    nets: Vec<Net>,
}

impl IpSet {
    pub fn parse<S: AsRef<str>>(list: &[S]) -> Result<IpSet, NetError> {
        let nets = list
            .iter()
            .map(|s| Net::parse(s.as_ref()))
            .collect::<Result<_, _>>()?;
        Ok(IpSet { nets })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|n| n.contains(ip))
    }

    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let rows: &[(&str, &str, bool)] = &[
            ("10.0.0.0/8", "10.1.2.3", true),
            ("10.0.0.0/8", "11.0.0.1", false),
            ("192.168.1.7", "192.168.1.7", true),
            ("192.168.1.7", "192.168.1.8", false),
            ("192.168.1.7/24", "192.168.1.200", true),
            ("0.0.0.0/0", "8.8.8.8", true),
            ("0.0.0.0/0", "::1", false),
            ("::/0", "127.0.0.1", false),
            ("::/0", "2001:db8::1", true),
            ("fd00::/8", "fd12::1", true),
            ("fd00::/8", "fe80::1", false),
            ("10.0.0.0/8", "::ffff:10.9.9.9", true),
            ("::ffff:10.0.0.0/104", "10.2.3.4", true),
            ("::ffff:10.0.0.0/104", "11.2.3.4", false),
            ("::1", "::1", true),
        ];
        for (net, ip, want) in rows {
            let n = Net::parse(net).unwrap();
            assert_eq!(n.contains(ip.parse().unwrap()), *want, "{net} ∋ {ip}");
        }
    }

    #[test]
    fn errors() {
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/",
            "10.0.0.0/x",
            "host.lan",
            "1.2.3.4/-1",
        ] {
            assert!(Net::parse(bad).is_err(), "{bad}");
        }
        assert!(IpSet::parse(&["10.0.0.0/8", "nope"]).is_err());
        let set = IpSet::parse(&["127.0.0.1", "10.0.0.0/8"]).unwrap();
        assert!(set.contains("10.3.3.3".parse().unwrap()));
        assert!(!set.contains("192.0.2.1".parse().unwrap()));
    }
}
