//! The DHCP names of the local zone: the snapshot's leases (which the dhcp provider feeds
//! through the assembler, like every other source) as `hostname → address` pairs. This module
//! only carries names: it does not validate host names (the zone does: they come from the
//! network) and holds no lease state of its own.

use std::net::IpAddr;

use crate::dynamic::Lease;

/// One name a lease publishes: `hostname.<zone>` (and the plain `hostname`) → `addr`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseName {
    /// The client's host name as it sent it (option 12 or 81); validated by the zone.
    pub hostname: String,
    pub addr: IpAddr,
}

impl LeaseName {
    pub fn new(hostname: &str, addr: IpAddr) -> Self {
        LeaseName {
            hostname: hostname.to_string(),
            addr,
        }
    }

    /// The names of `leases` that have a host name.
    pub fn of(leases: &[Lease]) -> Vec<LeaseName> {
        (leases.iter())
            .filter(|l| !l.hostname.is_empty())
            .map(|l| LeaseName::new(&l.hostname, IpAddr::V4(l.address)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_leases_with_a_name_publish_one() {
        let lease = |name: &str, last: u8| Lease {
            address: [10, 0, 0, last].into(),
            mac: "52:54:00:00:00:01".into(),
            hostname: name.into(),
            expires: 1,
        };
        let names = LeaseName::of(&[lease("pc", 9), lease("", 10)]);
        assert_eq!(names, [LeaseName::new("pc", IpAddr::from([10, 0, 0, 9]))]);
    }
}
