//! boma's nftables table, `inet boma`, over netlink (NETLINK_NETFILTER): the LAN's DNS and HTTP
//! redirects to boma's own listeners, masquerade towards the WAN, and the forward filter that
//! lets only answers in from the WAN. [`apply`] replaces the whole table in one nfnetlink batch
//! (add table, delete table, add table, chains, rules), which the kernel commits atomically:
//! either the new table is in place or nothing changed, and the error names the message the
//! kernel refused. [`render`] gives the same table in nft syntax, as `nft list table inet boma`
//! prints it (byte for byte with nftables 1.0.6; the tests compare the two).
//!
//! This module touches no table but `inet boma` (Docker's iptables-nft chains and every other
//! table stay as they are), runs no `nft` binary, and matches interfaces by name so that its rules
//! survive an interface being re-created.

mod wire;

use std::fmt::Write as _;
use std::io;
use std::time::{Duration, Instant};

use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_NETFILTER};

use crate::config::is_ifname;
use wire::{Batch, Sealed, Tally, Writer};

/// The table's name (family inet).
pub const TABLE: &str = "boma";

/// How long [`apply`] and [`remove`] wait for the kernel's answers to one batch.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// What boma's table should do. Interface names are matched as names (16-byte IFNAMSIZ compare).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NatSpec {
    /// The LAN interface (the bridge when there is one).
    pub lan: String,
    /// The WAN interface, when there is one.
    pub wan: Option<String>,
    /// Masquerade what leaves through `wan` (needs `wan`).
    pub masquerade: bool,
    /// Redirect the LAN's DNS (udp and tcp port 53, whatever the destination) to this local port.
    pub redirect_dns: Option<u16>,
    /// Redirect the LAN's HTTP (tcp port 80) to this local port.
    pub redirect_http: Option<u16>,
}

/// Why boma's table could not be applied or removed. A failed batch changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    #[error(
        "invalid interface name {0:?}: 1 to 15 bytes without '/', ':', quotes, backslash, whitespace or NUL"
    )]
    BadName(String),
    #[error("invalid port 0 for {0}")]
    BadPort(&'static str),
    #[error("nftables netlink socket: {0}")]
    Io(#[source] io::Error),
    #[error("nftables refused message {index} of the batch ({what}): {}", errno_text(*.errno))]
    Refused {
        /// Position among the batch's nf_tables messages, from 0 (BATCH_BEGIN/END not counted).
        index: usize,
        /// The message, e.g. `add rule prerouting iifname "br-lan" udp dport 53 redirect to :53`.
        what: String,
        /// The kernel's errno, positive.
        errno: i32,
    },
    #[error("nftables refused the batch: {}", errno_text(*.errno))]
    BatchRefused { errno: i32 },
    #[error(
        "no complete answer from nftables within {0:?}: whether the batch was applied is unknown"
    )]
    Timeout(Duration),
    #[error("malformed answer from nftables")]
    Malformed,
}

impl NftError {
    /// The kernel's errno (positive), when the kernel refused the batch or one of its messages.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NftError::Refused { errno, .. } | NftError::BatchRefused { errno } => Some(*errno),
            NftError::Io(e) => e.raw_os_error(),
            _ => None,
        }
    }
}

fn errno_text(errno: i32) -> String {
    format!("{} (errno {errno})", io::Error::from_raw_os_error(errno))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proto {
    Udp,
    Tcp,
}

impl Proto {
    fn name(self) -> &'static str {
        match self {
            Proto::Udp => "udp",
            Proto::Tcp => "tcp",
        }
    }

    /// The IP protocol number.
    fn number(self) -> u8 {
        match self {
            Proto::Udp => 17,
            Proto::Tcp => 6,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Match {
    Iifname(String),
    Oifname(String),
    /// `meta l4proto P` then the destination port.
    Dport(Proto, u16),
    CtEstablishedRelated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Redirect(u16),
    Masquerade,
    Accept,
    Drop,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    matches: Vec<Match>,
    action: Action,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hook {
    Prerouting,
    Postrouting,
    Forward,
}

impl Hook {
    /// (chain name, chain type, hook number, priority, nft's name for that priority)
    fn params(self) -> (&'static str, &'static str, u32, i32, &'static str) {
        match self {
            Hook::Prerouting => (
                "prerouting",
                "nat",
                wire::NF_INET_PRE_ROUTING,
                -100,
                "dstnat",
            ),
            Hook::Postrouting => (
                "postrouting",
                "nat",
                wire::NF_INET_POST_ROUTING,
                100,
                "srcnat",
            ),
            Hook::Forward => ("forward", "filter", wire::NF_INET_FORWARD, 0, "filter"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Chain {
    hook: Hook,
    rules: Vec<Rule>,
}

/// The chains the spec asks for; a chain without rules is left out.
fn chains(spec: &NatSpec) -> Vec<Chain> {
    let lan = || Match::Iifname(spec.lan.clone());
    let mut pre = Vec::new();
    if let Some(port) = spec.redirect_dns {
        for proto in [Proto::Udp, Proto::Tcp] {
            pre.push(Rule {
                matches: vec![lan(), Match::Dport(proto, 53)],
                action: Action::Redirect(port),
            });
        }
    }
    if let Some(port) = spec.redirect_http {
        pre.push(Rule {
            matches: vec![lan(), Match::Dport(Proto::Tcp, 80)],
            action: Action::Redirect(port),
        });
    }
    let mut post = Vec::new();
    let mut fwd = Vec::new();
    if let Some(wan) = &spec.wan {
        if spec.masquerade {
            post.push(Rule {
                matches: vec![Match::Oifname(wan.clone())],
                action: Action::Masquerade,
            });
        }
        let wan_to_lan = vec![
            Match::Iifname(wan.clone()),
            Match::Oifname(spec.lan.clone()),
        ];
        let mut answers = wan_to_lan.clone();
        answers.push(Match::CtEstablishedRelated);
        fwd.push(Rule {
            matches: answers,
            action: Action::Accept,
        });
        fwd.push(Rule {
            matches: wan_to_lan,
            action: Action::Drop,
        });
    }
    [
        (Hook::Prerouting, pre),
        (Hook::Postrouting, post),
        (Hook::Forward, fwd),
    ]
    .into_iter()
    .filter(|(_, rules)| !rules.is_empty())
    .map(|(hook, rules)| Chain { hook, rules })
    .collect()
}

fn render_rule(rule: &Rule) -> String {
    let mut words: Vec<String> = rule
        .matches
        .iter()
        .map(|m| match m {
            Match::Iifname(n) => format!("iifname \"{n}\""),
            Match::Oifname(n) => format!("oifname \"{n}\""),
            Match::Dport(p, port) => format!("{} dport {port}", p.name()),
            Match::CtEstablishedRelated => "ct state established,related".to_string(),
        })
        .collect();
    words.push(match rule.action {
        Action::Redirect(port) => format!("redirect to :{port}"),
        Action::Masquerade => "masquerade".into(),
        Action::Accept => "accept".into(),
        Action::Drop => "drop".into(),
    });
    words.join(" ")
}

/// The table [`apply`] makes, in nft syntax, as `nft list table inet boma` prints it.
pub fn render(spec: &NatSpec) -> String {
    let mut out = format!("table inet {TABLE} {{\n");
    for (i, chain) in chains(spec).iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let (name, kind, _, _, prio) = chain.hook.params();
        let _ = writeln!(out, "\tchain {name} {{");
        let _ = writeln!(
            out,
            "\t\ttype {kind} hook {name} priority {prio}; policy accept;"
        );
        for rule in &chain.rules {
            let _ = writeln!(out, "\t\t{}", render_rule(rule));
        }
        out.push_str("\t}\n");
    }
    out.push_str("}\n");
    out
}

/// An interface name as `meta iifname`/`oifname` loads it: IFNAMSIZ bytes, NUL-padded.
fn ifname_bytes(name: &str) -> [u8; 16] {
    let mut b = [0u8; 16];
    let n = name.len().min(15);
    b[..n].copy_from_slice(&name.as_bytes()[..n]);
    b
}

fn encode_rule(w: &mut Writer, rule: &Rule) {
    for m in &rule.matches {
        match m {
            Match::Iifname(n) | Match::Oifname(n) => {
                let key = match m {
                    Match::Iifname(_) => wire::NFT_META_IIFNAME,
                    _ => wire::NFT_META_OIFNAME,
                };
                w.meta_load(key);
                w.cmp(wire::NFT_CMP_EQ, &ifname_bytes(n));
            }
            Match::Dport(proto, port) => {
                w.meta_load(wire::NFT_META_L4PROTO);
                w.cmp(wire::NFT_CMP_EQ, &[proto.number()]);
                w.transport_load(2, 2);
                w.cmp(wire::NFT_CMP_EQ, &port.to_be_bytes());
            }
            Match::CtEstablishedRelated => {
                w.ct_state_load();
                w.and_mask(&wire::CT_STATE_ESTABLISHED_RELATED.to_ne_bytes());
                w.cmp(wire::NFT_CMP_NEQ, &0u32.to_ne_bytes());
            }
        }
    }
    match rule.action {
        Action::Redirect(port) => {
            w.immediate(&port.to_be_bytes());
            w.redirect_to_reg1();
        }
        Action::Masquerade => w.masquerade(),
        Action::Accept => w.verdict(wire::NF_ACCEPT),
        Action::Drop => w.verdict(wire::NF_DROP),
    }
}

/// Adds "add table; delete table": together they remove the table whether it existed or not.
fn add_table_and_delete(b: &mut Batch) {
    b.add(
        wire::NFT_MSG_NEWTABLE,
        wire::NLM_F_CREATE,
        format!("add table inet {TABLE}"),
        |w| w.attr_str(wire::NFTA_TABLE_NAME, TABLE),
    );
    b.add(
        wire::NFT_MSG_DELTABLE,
        0,
        format!("delete table inet {TABLE}"),
        |w| w.attr_str(wire::NFTA_TABLE_NAME, TABLE),
    );
}

/// The batch that makes the table exactly what `spec` says.
fn encode_apply(spec: &NatSpec, seq0: u32) -> Sealed {
    let mut b = Batch::new(seq0);
    add_table_and_delete(&mut b);
    b.add(
        wire::NFT_MSG_NEWTABLE,
        wire::NLM_F_CREATE,
        format!("add table inet {TABLE}"),
        |w| w.attr_str(wire::NFTA_TABLE_NAME, TABLE),
    );
    for chain in chains(spec) {
        let (name, kind, hooknum, prio, _) = chain.hook.params();
        b.add(
            wire::NFT_MSG_NEWCHAIN,
            wire::NLM_F_CREATE,
            format!("add chain {name}"),
            |w| {
                w.attr_str(wire::NFTA_CHAIN_TABLE, TABLE);
                w.attr_str(wire::NFTA_CHAIN_NAME, name);
                w.nested(wire::NFTA_CHAIN_HOOK, |w| {
                    w.attr_u32(wire::NFTA_HOOK_HOOKNUM, hooknum);
                    w.attr_u32(wire::NFTA_HOOK_PRIORITY, prio as u32);
                });
                w.attr_u32(wire::NFTA_CHAIN_POLICY, wire::NF_ACCEPT);
                w.attr_str(wire::NFTA_CHAIN_TYPE, kind);
            },
        );
        for rule in &chain.rules {
            let label = format!("add rule {name} {}", render_rule(rule));
            let flags = wire::NLM_F_CREATE | wire::NLM_F_APPEND;
            b.add(wire::NFT_MSG_NEWRULE, flags, label, |w| {
                w.attr_str(wire::NFTA_RULE_TABLE, TABLE);
                w.attr_str(wire::NFTA_RULE_CHAIN, name);
                w.nested(wire::NFTA_RULE_EXPRESSIONS, |w| encode_rule(w, rule));
            });
        }
    }
    b.seal()
}

fn encode_remove(seq0: u32) -> Sealed {
    let mut b = Batch::new(seq0);
    add_table_and_delete(&mut b);
    b.seal()
}

fn check_spec(spec: &NatSpec) -> Result<(), NftError> {
    for name in std::iter::once(&spec.lan).chain(spec.wan.as_ref()) {
        if !is_ifname(name) {
            return Err(NftError::BadName(name.clone()));
        }
    }
    if spec.redirect_dns == Some(0) {
        return Err(NftError::BadPort("the DNS redirect"));
    }
    if spec.redirect_http == Some(0) {
        return Err(NftError::BadPort("the HTTP redirect"));
    }
    Ok(())
}

/// Makes table `inet boma` exactly what `spec` says, replacing any previous version of it in one
/// atomic batch, and touching no other table. On error nothing changed.
pub fn apply(spec: &NatSpec) -> Result<(), NftError> {
    check_spec(spec)?;
    send_batch(&encode_apply(spec, 1))
}

/// Deletes table `inet boma`; a missing table is fine.
pub fn remove() -> Result<(), NftError> {
    send_batch(&encode_remove(1))
}

/// Sends one batch and reads the kernel's answers until every message is answered (each asks
/// for an ACK), the batch as a whole is refused, or [`ANSWER_TIMEOUT`] has passed.
fn send_batch(sealed: &Sealed) -> Result<(), NftError> {
    let mut sock = Socket::new(NETLINK_NETFILTER).map_err(NftError::Io)?;
    sock.bind_auto().map_err(NftError::Io)?;
    // Error answers carry only the refused message's header, not the whole message.
    sock.set_cap_ack(true).map_err(NftError::Io)?;
    let opts = socket2::SockRef::from(&sock);
    opts.set_write_timeout(Some(ANSWER_TIMEOUT))
        .map_err(NftError::Io)?;
    let sent = sock
        .send_to(&sealed.bytes, &SocketAddr::new(0, 0), 0)
        .map_err(NftError::Io)?;
    if sent != sealed.bytes.len() {
        return Err(NftError::Io(io::Error::other("short send of the batch")));
    }
    let deadline = Instant::now() + ANSWER_TIMEOUT;
    let mut tally = Tally::new(sealed);
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    while !tally.complete() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(NftError::Timeout(ANSWER_TIMEOUT));
        }
        opts.set_read_timeout(Some(left)).map_err(NftError::Io)?;
        buf.clear();
        let n = match sock.recv(&mut buf, 0) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                return Err(NftError::Timeout(ANSWER_TIMEOUT));
            }
            Err(e) => return Err(NftError::Io(e)),
        };
        if n > buf.len() {
            return Err(NftError::Malformed);
        }
        for answer in wire::parse_answers(&buf).ok_or(NftError::Malformed)? {
            tally.record(answer);
        }
    }
    if let Some(errno) = tally.batch_error {
        return Err(NftError::BatchRefused { errno });
    }
    if let Some((index, errno)) = tally.first_error {
        let what = sealed.labels.get(index).cloned().unwrap_or_default();
        return Err(NftError::Refused { index, what, errno });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
