//! The router's static sections (snake_case keys, like `[dns]`): `[lan]` (the village side:
//! interface or bridge and the gateway's address), `[wan]` (the uplink: DHCP or static),
//! `[dhcp]` (the DHCP server: range, lease time, static hosts, state directory) and `[nat]`
//! (masquerade and the port 53/80 redirects).
//!
//! Two roles come out of one file: with `[lan]` the box is a **gateway** (it addresses the LAN,
//! may serve DHCP and NAT to `[wan]`); without it, a **server** on one network that somebody
//! else's router runs (`[wan]` alone, or nothing when the image's init configures the network).
//! Types, defaults and the checks that relate these values; nothing here touches an interface.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::Duration;
use super::validate::Check;

/// An IPv4 address with its prefix length, written `10.10.0.1/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Cidr {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Ipv4Cidr {
    /// The network mask (`/24` → 255.255.255.0).
    pub fn mask(&self) -> Ipv4Addr {
        Ipv4Addr::from(crate::ipnet::mask32(self.prefix))
    }

    /// The network address.
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & u32::from(self.mask()))
    }

    /// The subnet's broadcast address.
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network()) | !u32::from(self.mask()))
    }

    /// Whether `ip` is in this subnet.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & u32::from(self.mask()) == u32::from(self.network())
    }

    /// Whether `ip` is a host address of the subnet (not its network or broadcast address).
    pub fn is_host(&self, ip: Ipv4Addr) -> bool {
        self.contains(ip) && (self.prefix >= 31 || (ip != self.network() && ip != self.broadcast()))
    }
}

impl std::str::FromStr for Ipv4Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, prefix) = s
            .trim()
            .split_once('/')
            .ok_or_else(|| format!("`{s}` is not ADDRESS/PREFIX like 10.10.0.1/24"))?;
        let addr: Ipv4Addr = addr
            .parse()
            .map_err(|_| format!("`{addr}` is not an IPv4 address"))?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| (1..=32).contains(p))
            .ok_or_else(|| format!("`/{prefix}` is not a prefix length from 1 to 32"))?;
        Ok(Ipv4Cidr { addr, prefix })
    }
}

impl std::fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl<'de> Deserialize<'de> for Ipv4Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for Ipv4Cidr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// `[lan]`: the village side of a gateway.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Lan {
    /// The LAN interface, or the bridge to create when `bridge` lists members.
    pub interface: String,
    /// The gateway's address on the LAN with the subnet's prefix (`10.10.0.1/24`).
    pub address: Ipv4Cidr,
    /// Interfaces to put into the bridge `interface` (Ethernet ports, a Wi-Fi access point).
    #[serde(default)]
    pub bridge: Vec<String>,
}

/// How the WAN side gets its address.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WanMode {
    /// A DHCP client (busybox `udhcpc`, supervised by boma) on the WAN interface.
    #[default]
    Dhcp,
    /// `address` and `gateway` as configured.
    Static,
}

/// `[wan]`: the uplink.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Wan {
    pub interface: String,
    #[serde(default)]
    pub mode: WanMode,
    /// With `mode = "static"`: the WAN address with its prefix.
    pub address: Option<Ipv4Cidr>,
    /// With `mode = "static"`: the default route.
    pub gateway: Option<Ipv4Addr>,
    /// With `mode = "dhcp"`: the DHCP client program (default `udhcpc`) and the script it runs
    /// (default `/usr/share/udhcpc/boma.script`, the image's).
    #[serde(default = "default_udhcpc")]
    pub dhcp_client: String,
    #[serde(default = "default_udhcpc_script")]
    pub dhcp_script: PathBuf,
}

fn default_udhcpc() -> String {
    "udhcpc".into()
}

fn default_udhcpc_script() -> PathBuf {
    PathBuf::from("/usr/share/udhcpc/boma.script")
}

/// One `[[dhcp.hosts]]` entry: a fixed address (and name) for one client.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DhcpHost {
    /// The client's Ethernet address, `aa:bb:cc:dd:ee:ff`.
    pub mac: String,
    pub address: Ipv4Addr,
    /// Its name in the local zone (`name.<domain>`); default: the name the client sends.
    pub name: Option<String>,
}

impl DhcpHost {
    /// The MAC as bytes, when it is six colon- or dash-separated hex pairs.
    pub fn mac_bytes(&self) -> Option<[u8; 6]> {
        parse_mac(&self.mac)
    }
}

/// `aa:bb:cc:dd:ee:ff` (or with dashes) as bytes.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.trim().split([':', '-']);
    for byte in &mut out {
        let part = parts.next()?;
        if part.len() != 2 {
            return None;
        }
        *byte = u8::from_str_radix(part, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// `[dhcp]`: the DHCPv4 server on the LAN. Needs `[lan]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Dhcp {
    /// First and last address handed out (default: .100 to .250 of the LAN's /24, or the whole
    /// subnet but the gateway for other prefixes).
    pub range: Vec<Ipv4Addr>,
    /// How long a lease lasts (default 12h; at least 2m).
    pub lease_time: Duration,
    /// Fixed addresses and names by MAC.
    pub hosts: Vec<DhcpHost>,
    /// The domain given to clients (option 15) and under which their names are published
    /// (default: the `[dns]` zone).
    pub domain: Option<String>,
    /// Where leases are kept (`leases`, dnsmasq's format): default `/data/boma`, the image's data
    /// partition.
    pub state_dir: PathBuf,
    /// As dnsmasq's `dhcp-authoritative`: answer a client that asks for an address this server
    /// has no record of (after a lost lease file, or a move from another server) at once with an
    /// ACK when the address is free or a NAK when not, instead of staying silent (default true:
    /// the gateway is the only server of its LAN).
    pub authoritative: bool,
    /// Before serving, and again every `rogue_check_interval` while serving, look for another
    /// DHCP server on the LAN and refuse to serve while one answers (default true).
    pub rogue_check: bool,
    pub rogue_check_interval: Duration,
    /// How long an address a client declined (in use by someone else) is kept out of the pool
    /// (default 10m).
    pub decline_time: Duration,
}

impl Default for Dhcp {
    fn default() -> Self {
        Self {
            range: Vec::new(),
            lease_time: Duration::from_secs(12 * 3600),
            hosts: Vec::new(),
            domain: None,
            state_dir: PathBuf::from("/data/boma"),
            authoritative: true,
            rogue_check: true,
            rogue_check_interval: Duration::from_secs(60),
            decline_time: Duration::from_secs(600),
        }
    }
}

/// Largest pool: the lease table is allocated for the whole range at start.
pub const MAX_POOL: u32 = 65_536;

impl Dhcp {
    /// The first and last address of the pool on `lan`: `range`, or the default for the subnet.
    pub fn pool(&self, lan: &Ipv4Cidr) -> (Ipv4Addr, Ipv4Addr) {
        if let [first, last] = self.range[..] {
            return (first, last);
        }
        let net = u32::from(lan.network());
        let bcast = u32::from(lan.broadcast());
        if lan.prefix == 24 {
            (Ipv4Addr::from(net + 100), Ipv4Addr::from(net + 250))
        } else if lan.prefix >= 31 {
            (lan.addr, lan.addr)
        } else {
            (Ipv4Addr::from(net + 1), Ipv4Addr::from(bcast - 1))
        }
    }
}

/// `[nat]`: what the gateway does to traffic between LAN and WAN. Needs `[lan]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Nat {
    /// Masquerade LAN traffic leaving through `[wan]` and forward only replies back (default
    /// true).
    pub masquerade: bool,
    /// Answer every DNS query from the LAN here, whatever server it was sent to (default true).
    pub redirect_dns: bool,
    /// Send every plain-HTTP request from the LAN to the proxy (default false).
    pub redirect_http: bool,
    /// The entry point `redirect_http` goes to (default `web`).
    pub http_entry_point: String,
}

impl Default for Nat {
    fn default() -> Self {
        Self {
            masquerade: true,
            redirect_dns: true,
            redirect_http: false,
            http_entry_point: "web".into(),
        }
    }
}

impl Check<'_> {
    /// The router sections, each alone and against each other and `[dns]`.
    pub(super) fn router(&mut self, c: &super::Config) {
        let lan = c.lan.as_ref();
        for (section, present) in [("dhcp", c.dhcp.is_some()), ("nat", c.nat.is_some())] {
            if present && lan.is_none() {
                self.key(
                    &[section],
                    format!("[{section}] needs a [lan] section (the interface it serves)"),
                );
            }
        }
        if let Some(lan) = lan {
            self.lan(lan);
        }
        if let Some(wan) = &c.wan {
            self.wan(wan, lan);
        }
        if let (Some(dhcp), Some(lan)) = (&c.dhcp, lan) {
            self.dhcp(dhcp, lan);
        }
        if let Some(nat) = &c.nat {
            if nat.redirect_dns && c.dns.is_none() {
                self.value(
                    &["nat", "redirect_dns"],
                    "`redirect_dns` sends queries to boma's DNS, but there is no [dns] section",
                );
            }
            if nat.redirect_http && !c.entry_points.contains_key(&nat.http_entry_point) {
                self.value(
                    &["nat", "redirect_http"],
                    format!(
                        "`redirect_http` goes to entry point `{}`, which is not defined",
                        nat.http_entry_point
                    ),
                );
            }
            if nat.masquerade && c.wan.is_none() {
                self.value(
                    &["nat", "masquerade"],
                    "`masquerade` needs a [wan] section (the interface to masquerade on)",
                );
            }
        }
    }

    fn lan(&mut self, lan: &Lan) {
        if !is_ifname(&lan.interface) {
            self.value(
                &["lan", "interface"],
                format!("`{}` is not an interface name", lan.interface),
            );
        }
        if !lan.address.is_host(lan.address.addr) || lan.address.prefix > 30 {
            self.value(
                &["lan", "address"],
                format!(
                    "`{}` is not a host address of a subnet with room for clients",
                    lan.address
                ),
            );
        }
        for (i, member) in lan.bridge.iter().enumerate() {
            if !is_ifname(member) || *member == lan.interface {
                let index = i.to_string();
                self.value(
                    &["lan", "bridge", &index],
                    format!("`{member}` is not a member interface name"),
                );
            }
        }
    }

    fn wan(&mut self, wan: &Wan, lan: Option<&Lan>) {
        if !is_ifname(&wan.interface) {
            self.value(
                &["wan", "interface"],
                format!("`{}` is not an interface name", wan.interface),
            );
        }
        if let Some(lan) = lan
            && (lan.interface == wan.interface || lan.bridge.contains(&wan.interface))
        {
            self.value(
                &["wan", "interface"],
                format!("`{}` is also the LAN", wan.interface),
            );
        }
        match (wan.mode, wan.address) {
            (WanMode::Static, None) => {
                self.key(&["wan"], "`mode = \"static\"` needs `address`");
            }
            (WanMode::Static, Some(addr)) => {
                if let Some(gw) = wan.gateway
                    && (!addr.contains(gw) || gw == addr.addr)
                {
                    self.value(
                        &["wan", "gateway"],
                        format!("`{gw}` is not another address of the WAN subnet {addr}"),
                    );
                }
                if let Some(lan) = lan
                    && (lan.address.contains(addr.addr) || addr.contains(lan.address.addr))
                {
                    self.value(
                        &["wan", "address"],
                        format!("{addr} overlaps the LAN {}", lan.address),
                    );
                }
            }
            (WanMode::Dhcp, Some(_)) => {
                self.value(&["wan", "address"], "`address` is for `mode = \"static\"`");
            }
            (WanMode::Dhcp, None) => {}
        }
    }

    fn dhcp(&mut self, dhcp: &Dhcp, lan: &Lan) {
        let net = &lan.address;
        if !dhcp.range.is_empty() && dhcp.range.len() != 2 {
            self.value(&["dhcp", "range"], "`range` is [first, last]");
        }
        let (first, last) = dhcp.pool(net);
        if dhcp.range.len() == 2 {
            for (i, ip) in dhcp.range.iter().enumerate() {
                if !net.is_host(*ip) {
                    let index = i.to_string();
                    self.value(
                        &["dhcp", "range", &index],
                        format!("{ip} is outside the LAN subnet {net}"),
                    );
                }
            }
            if u32::from(first) > u32::from(last) {
                self.value(&["dhcp", "range"], "the first address is after the last");
            } else if u32::from(last) - u32::from(first) >= MAX_POOL {
                self.value(
                    &["dhcp", "range"],
                    format!("the range holds more than {MAX_POOL} addresses"),
                );
            } else if (first..=last).contains(&net.addr) && first == last {
                self.value(
                    &["dhcp", "range"],
                    "the range is only the gateway's address",
                );
            }
        }
        if dhcp.lease_time.to_std().as_secs() < 120 {
            self.value(&["dhcp", "lease_time"], "`lease_time` must be at least 2m");
        }
        self.positive(&["dhcp", "decline_time"], dhcp.decline_time);
        self.positive(&["dhcp", "rogue_check_interval"], dhcp.rogue_check_interval);
        if let Some(domain) = &dhcp.domain
            && !super::is_domain_name(domain)
        {
            self.value(
                &["dhcp", "domain"],
                format!("`{domain}` is not a domain name"),
            );
        }
        self.dhcp_hosts(dhcp, net);
    }

    fn dhcp_hosts(&mut self, dhcp: &Dhcp, net: &Ipv4Cidr) {
        for (i, host) in dhcp.hosts.iter().enumerate() {
            let index = i.to_string();
            let path = |key: &'static str| ["dhcp", "hosts", index.as_str(), key];
            if host.mac_bytes().is_none() {
                self.value(
                    &path("mac"),
                    format!("`{}` is not a MAC address like aa:bb:cc:dd:ee:ff", host.mac),
                );
            }
            if !net.is_host(host.address) {
                self.value(
                    &path("address"),
                    format!("{} is outside the LAN subnet {net}", host.address),
                );
            } else if host.address == net.addr {
                self.value(
                    &path("address"),
                    format!("{} is the gateway's own address", host.address),
                );
            }
            if let Some(name) = &host.name
                && !is_host_label(name)
            {
                self.value(
                    &path("name"),
                    format!("`{name}` is not a host name (letters, digits, `-`)"),
                );
            }
            let earlier = &dhcp.hosts[..i];
            if earlier.iter().any(|h| h.address == host.address) {
                self.value(
                    &path("address"),
                    format!("{} is already another host's address", host.address),
                );
            }
            if host.mac_bytes().is_some()
                && earlier.iter().any(|h| h.mac_bytes() == host.mac_bytes())
            {
                self.value(&path("mac"), format!("{} is listed twice", host.mac));
            }
        }
    }
}

/// Whether `name` is an interface name boma accepts: what Linux accepts (1 to 15 bytes, IFNAMSIZ
/// less the NUL; no '/', ':' or whitespace; not "." or "..") without quotes and backslashes, so
/// that a name is also safe to quote in nft syntax. The one rule for `boma check` and netlink.
pub fn is_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() < 16
        && name != "."
        && name != ".."
        && !name.bytes().any(|b| {
            b == b'/' || b == b':' || b == b'"' || b == b'\\' || b == 0 || b.is_ascii_whitespace()
        })
}

/// One DNS label: 1 to 63 letters, digits or `-`, not starting or ending with `-`.
pub fn is_host_label(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}
