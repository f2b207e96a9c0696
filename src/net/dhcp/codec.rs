//! DHCPv4 messages on the wire, on `smoltcp::wire`'s codec: a client message is checked with
//! `DhcpPacket::new_checked` and its options read from smoltcp's option iterator (so every form
//! of client identifier, host name, FQDN and parameter list is seen raw, including the ones
//! smoltcp's `DhcpRepr::parse` rejects or ignores); a reply is a [`Reply`] emitted through
//! `DhcpRepr::emit` with the options smoltcp does not model passed as additional options.
//!
//! Pure: bytes in, a [`Message`] or a [`Malformed`] reason out; a [`Reply`] in, bytes out. No
//! socket, no clock, no lease state. After `new_checked` no accessor panics, and every option is
//! length-checked before use.

use std::net::Ipv4Addr;

use smoltcp::wire::{DhcpMessageType, DhcpOption, DhcpPacket, DhcpRepr, EthernetAddress};

pub use smoltcp::wire::DhcpMessageType as MessageType;

/// The BOOTP minimum message size: replies are padded to it (some clients drop shorter ones).
const MIN_REPLY: usize = 300;
/// The largest reply boma sends (the minimum every client must accept, RFC 2131).
pub const MAX_REPLY: usize = 576;
/// Longest client identifier kept; longer ones are treated as absent (the MAC identifies).
pub const MAX_CLIENT_ID: usize = 64;

const OPT_HOSTNAME: u8 = 12;
const OPT_DOMAIN: u8 = 15;
const OPT_BROADCAST: u8 = 28;
const OPT_REQUESTED_IP: u8 = 50;
const OPT_MESSAGE_TYPE: u8 = 53;
const OPT_SERVER_ID: u8 = 54;
const OPT_PARAMS: u8 = 55;
const OPT_MESSAGE: u8 = 56;
const OPT_MAX_SIZE: u8 = 57;
const OPT_T1: u8 = 58;
const OPT_T2: u8 = 59;
const OPT_CLIENT_ID: u8 = 61;
const OPT_FQDN: u8 = 81;
const OPT_CLASSLESS_ROUTES: u8 = 121;

/// Why a packet was dropped before any lease logic saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    #[error("shorter than a BOOTP header")]
    Truncated,
    #[error("not a BOOTREQUEST")]
    NotRequest,
    #[error("hardware type is not Ethernet with 6-byte addresses")]
    NotEthernet,
    #[error("no DHCP magic cookie")]
    NoMagic,
    #[error("no valid message type option")]
    NoMessageType,
    #[error("a server message type in a client request")]
    WrongMessageType,
    #[error("option {0} has a bad length")]
    BadOption(u8),
}

/// A client's message, as the server needs it; borrows the packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    pub kind: MessageType,
    pub xid: u32,
    pub secs: u16,
    pub broadcast: bool,
    pub ciaddr: Ipv4Addr,
    pub giaddr: Ipv4Addr,
    pub chaddr: [u8; 6],
    pub requested_ip: Option<Ipv4Addr>,
    pub server_id: Option<Ipv4Addr>,
    /// Option 61 as sent (hardware type + MAC, or 255 + IAID + DUID, or anything else).
    pub client_id: Option<&'a [u8]>,
    /// Option 12, raw.
    pub hostname: Option<&'a [u8]>,
    /// Option 81, raw (flags, two rcodes, the name).
    pub fqdn: Option<&'a [u8]>,
    /// Option 55.
    pub params: &'a [u8],
    /// Option 57.
    pub max_size: Option<u16>,
}

impl Message<'_> {
    /// Whether the client asked for option `code`.
    pub fn wants(&self, code: u8) -> bool {
        self.params.contains(&code)
    }

    /// The host name the client gave, as one lower-case DNS label: the FQDN option's first
    /// label, else option 12's; `None` when absent or not a valid label.
    pub fn host_label(&self) -> Option<String> {
        let from_fqdn = self.fqdn.and_then(fqdn_first_label);
        let raw = from_fqdn.or_else(|| {
            let name = self.hostname?;
            Some(name.split(|b| *b == b'.').next().unwrap_or(name).to_vec())
        })?;
        let label: String = String::from_utf8(raw).ok()?.trim().to_ascii_lowercase();
        crate::config::is_host_label(&label).then_some(label)
    }
}

/// The first label of an FQDN option (RFC 4702): wire format when the E flag is set, else text.
fn fqdn_first_label(data: &[u8]) -> Option<Vec<u8>> {
    let (&flags, rest) = data.split_first()?;
    let name = rest.get(2..)?;
    if flags & 0x04 != 0 {
        let (&len, tail) = name.split_first()?;
        tail.get(..usize::from(len)).map(<[u8]>::to_vec)
    } else {
        let first = name.split(|b| *b == b'.').next()?;
        (!first.is_empty()).then(|| first.to_vec())
    }
}

/// Where the options start: after the fixed BOOTP fields and the magic cookie.
const OPTIONS_START: usize = 240;

/// The options as (code, data), borrowing the packet; stops at END or at an option that runs
/// past the buffer (smoltcp's iterator does the same, but borrows the `DhcpPacket` instead).
fn raw_options(mut buf: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    std::iter::from_fn(move || {
        loop {
            let (&code, rest) = buf.split_first()?;
            match code {
                0 => buf = rest,
                255 => return None,
                _ => {
                    let (&len, rest) = rest.split_first()?;
                    let data = rest.get(..usize::from(len))?;
                    buf = &rest[usize::from(len)..];
                    return Some((code, data));
                }
            }
        }
    })
}

fn ipv4(data: &[u8], code: u8) -> Result<Ipv4Addr, Malformed> {
    <[u8; 4]>::try_from(data)
        .map(Ipv4Addr::from)
        .map_err(|_| Malformed::BadOption(code))
}

/// Parse one client message (the UDP payload).
pub fn parse(buf: &[u8]) -> Result<Message<'_>, Malformed> {
    let packet = DhcpPacket::new_checked(buf).map_err(|_| Malformed::Truncated)?;
    if packet.opcode() != smoltcp::wire::DhcpOpCode::Request {
        return Err(Malformed::NotRequest);
    }
    if buf.get(1..3) != Some(&[1, 6]) {
        return Err(Malformed::NotEthernet);
    }
    if packet.magic_number() != 0x6382_5363 {
        return Err(Malformed::NoMagic);
    }
    let mut msg = Message {
        kind: MessageType::Unknown(0),
        xid: packet.transaction_id(),
        secs: packet.secs(),
        broadcast: packet.flags().contains(smoltcp::wire::DhcpFlags::BROADCAST),
        ciaddr: packet.client_ip(),
        giaddr: packet.relay_agent_ip(),
        chaddr: packet.client_hardware_address().0,
        requested_ip: None,
        server_id: None,
        client_id: None,
        hostname: None,
        fqdn: None,
        params: &[],
        max_size: None,
    };
    let mut kind = None;
    for (code, data) in raw_options(buf.get(OPTIONS_START..).unwrap_or_default()) {
        match code {
            OPT_MESSAGE_TYPE => match data {
                [t] => kind = Some(MessageType::from(*t)),
                _ => return Err(Malformed::BadOption(code)),
            },
            OPT_REQUESTED_IP => msg.requested_ip = Some(ipv4(data, code)?),
            OPT_SERVER_ID => msg.server_id = Some(ipv4(data, code)?),
            OPT_CLIENT_ID if (2..=MAX_CLIENT_ID).contains(&data.len()) => {
                msg.client_id = Some(data);
            }
            OPT_HOSTNAME if !data.is_empty() => msg.hostname = Some(data),
            OPT_FQDN if data.len() >= 3 => msg.fqdn = Some(data),
            OPT_PARAMS => msg.params = data,
            OPT_MAX_SIZE => match data {
                [a, b] => msg.max_size = Some(u16::from_be_bytes([*a, *b])),
                _ => return Err(Malformed::BadOption(code)),
            },
            _ => {}
        }
    }
    msg.kind = kind.ok_or(Malformed::NoMessageType)?;
    match msg.kind {
        MessageType::Discover
        | MessageType::Request
        | MessageType::Decline
        | MessageType::Release
        | MessageType::Inform => Ok(msg),
        _ => Err(Malformed::WrongMessageType),
    }
}

/// What the LAN looks like to a client: the options every OFFER and ACK carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    pub server_id: Ipv4Addr,
    pub subnet_mask: Ipv4Addr,
    pub router: Ipv4Addr,
    pub dns: Ipv4Addr,
    pub broadcast: Ipv4Addr,
    pub domain: String,
}

impl Network {
    /// A /24 LAN served from 10.9.0.1 in `village.lan`: the fixture of the fuzz target and the
    /// codec tests.
    #[doc(hidden)]
    pub fn example() -> Network {
        Network {
            server_id: Ipv4Addr::new(10, 9, 0, 1),
            subnet_mask: Ipv4Addr::new(255, 255, 255, 0),
            router: Ipv4Addr::new(10, 9, 0, 1),
            dns: Ipv4Addr::new(10, 9, 0, 1),
            broadcast: Ipv4Addr::new(10, 9, 0, 255),
            domain: "village.lan".into(),
        }
    }
}

/// A server reply to emit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply<'a> {
    pub kind: MessageType,
    /// The request it answers (xid, flags, chaddr, giaddr, client id and parameters are echoed).
    pub to: &'a Message<'a>,
    pub yiaddr: Ipv4Addr,
    /// Copied from the request for ACKs of INFORM and renewals; zero otherwise.
    pub ciaddr: Ipv4Addr,
    /// The lease time in seconds (T1 and T2 follow as RFC 2131's 50% and 87.5%).
    pub lease: Option<u32>,
    /// Option 12 for a client whose name the server set (a static host).
    pub hostname: Option<&'a str>,
    /// Option 56, with NAKs.
    pub message: Option<&'a str>,
}

fn add<'a>(
    extra: &mut heapless::Vec<DhcpOption<'a>, 12>,
    kind: u8,
    data: &'a [u8],
) -> Result<(), Malformed> {
    extra
        .push(DhcpOption { kind, data })
        .map_err(|_| Malformed::BadOption(kind))
}

/// Emit `reply` for `net` into `buf` (at least [`MAX_REPLY`] bytes, zeroed by this function);
/// returns the length to send.
pub fn emit(reply: &Reply<'_>, net: &Network, buf: &mut [u8]) -> Result<usize, Malformed> {
    let msg = reply.to;
    let full = reply.kind != MessageType::Nak;
    let (mut t1, mut t2) = ([0u8; 4], [0u8; 4]);
    let broadcast = net.broadcast.octets();
    let mut routes = [0u8; 5];
    let domain = net.domain.as_bytes();
    let mut extra: heapless::Vec<DhcpOption<'_>, 12> = heapless::Vec::new();
    if let Some(id) = msg.client_id {
        add(&mut extra, OPT_CLIENT_ID, id)?;
    }
    if let Some(text) = reply.message {
        let data = &text.as_bytes()[..text.len().min(200)];
        add(&mut extra, OPT_MESSAGE, data)?;
    }
    if full {
        if let Some(lease) = reply.lease {
            t1 = (lease / 2).to_be_bytes();
            t2 = (lease / 8 * 7).to_be_bytes();
        }
        if reply.lease.is_some() {
            add(&mut extra, OPT_T1, &t1)?;
            add(&mut extra, OPT_T2, &t2)?;
        }
        add(&mut extra, OPT_BROADCAST, &broadcast)?;
        if !domain.is_empty() && domain.len() <= 255 {
            add(&mut extra, OPT_DOMAIN, domain)?;
        }
        if let Some(name) = reply.hostname.filter(|n| n.len() <= 63) {
            add(&mut extra, OPT_HOSTNAME, name.as_bytes())?;
        }
        // A client that asks for classless routes ignores option 3 (RFC 3442): give it the
        // default route there too.
        if msg.wants(OPT_CLASSLESS_ROUTES) {
            routes[1..].copy_from_slice(&net.router.octets());
            add(&mut extra, OPT_CLASSLESS_ROUTES, &routes)?;
        }
    }
    let mut dns = heapless::Vec::new();
    if full {
        let _ = dns.push(net.dns);
    }
    let repr = DhcpRepr {
        message_type: reply.kind,
        transaction_id: msg.xid,
        secs: 0,
        client_hardware_address: EthernetAddress(msg.chaddr),
        client_ip: reply.ciaddr,
        your_ip: reply.yiaddr,
        server_ip: Ipv4Addr::UNSPECIFIED,
        router: full.then_some(net.router),
        subnet_mask: full.then_some(net.subnet_mask),
        relay_agent_ip: msg.giaddr,
        broadcast: msg.broadcast,
        requested_ip: None,
        client_identifier: None,
        server_identifier: Some(net.server_id),
        parameter_request_list: None,
        dns_servers: full.then_some(dns),
        max_size: None,
        lease_duration: reply.lease.filter(|_| full),
        renew_duration: None,
        rebind_duration: None,
        additional_options: &extra,
    };
    let len = repr.buffer_len();
    let buf = buf.get_mut(..MAX_REPLY).ok_or(Malformed::Truncated)?;
    if len > buf.len() {
        return Err(Malformed::Truncated);
    }
    buf.fill(0);
    let mut packet = DhcpPacket::new_unchecked(&mut buf[..]);
    repr.emit(&mut packet).map_err(|_| Malformed::Truncated)?;
    Ok(len.max(MIN_REPLY))
}

/// A DISCOVER that a server probing for other servers sends (the rogue-DHCP guard), asking for
/// broadcast replies.
pub fn discover_probe(xid: u32, mac: [u8; 6], buf: &mut [u8]) -> Result<usize, Malformed> {
    let repr = DhcpRepr {
        message_type: DhcpMessageType::Discover,
        transaction_id: xid,
        secs: 0,
        client_hardware_address: EthernetAddress(mac),
        client_ip: Ipv4Addr::UNSPECIFIED,
        your_ip: Ipv4Addr::UNSPECIFIED,
        server_ip: Ipv4Addr::UNSPECIFIED,
        router: None,
        subnet_mask: None,
        relay_agent_ip: Ipv4Addr::UNSPECIFIED,
        broadcast: true,
        requested_ip: None,
        client_identifier: None,
        server_identifier: None,
        parameter_request_list: Some(&[1, 3, 6]),
        dns_servers: None,
        max_size: None,
        lease_duration: None,
        renew_duration: None,
        rebind_duration: None,
        additional_options: &[],
    };
    let len = repr.buffer_len();
    let buf = buf.get_mut(..MAX_REPLY).ok_or(Malformed::Truncated)?;
    buf.fill(0);
    let mut packet = DhcpPacket::new_unchecked(&mut buf[..]);
    repr.emit(&mut packet).map_err(|_| Malformed::Truncated)?;
    Ok(len.max(MIN_REPLY))
}

/// A server's OFFER seen by the probe: its transaction and server identifier.
pub fn parse_offer(buf: &[u8]) -> Option<(u32, Ipv4Addr)> {
    let packet = DhcpPacket::new_checked(buf).ok()?;
    let repr = DhcpRepr::parse(&packet).ok()?;
    if repr.message_type != DhcpMessageType::Offer {
        return None;
    }
    Some((repr.transaction_id, repr.server_identifier?))
}

#[cfg(test)]
#[path = "tests_codec.rs"]
mod tests;
