//! The network side of a gateway: the DHCP server ([`dhcp`]), interfaces and addresses
//! ([`links`], over rtnetlink), boma's nftables table ([`nft`], over nfnetlink), the set-up
//! that brings them up from the configuration ([`setup`]), and the helper daemons boma runs
//! ([`supervise`]: udhcpc on the WAN; hostapd or wpa_supplicant for [`wifi`]). It sits beside the proxy and DNS and
//! below the wiring (`lib.rs`, `wiring`): nothing here imports the dynamic model, the providers or the
//! consumers, and what it produces (leases, interface addresses) leaves on watch channels.
//! Everything talks to the kernel of the current network namespace through netlink sockets in
//! pure Rust: it never runs `ip`, `iw` or `nft`, and it touches only the interfaces it is told to.

pub mod dhcp;
pub mod links;
pub mod nft;
pub mod setup;
pub mod supervise;
pub mod wifi;

use std::time::Duration;

/// How long one rtnetlink request may wait for the kernel's answer.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a link, address or route operation failed.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("interface {0} does not exist")]
    NoSuchInterface(String),
    #[error("interface {0} exists but is not a bridge")]
    NotABridge(String),
    #[error(
        "invalid interface name {0:?}: 1 to 15 bytes without '/', ':', quotes, backslash, whitespace or NUL"
    )]
    BadName(String),
    #[error("prefix length /{0} is not in 0..=32")]
    BadPrefix(u8),
    #[error("cannot open a netlink socket: {0}")]
    Socket(#[source] std::io::Error),
    #[error("{what}: {source}")]
    Netlink {
        what: String,
        #[source]
        source: rtnetlink::Error,
    },
    #[error("{what}: no answer from the kernel within {timeout:?}")]
    Timeout { what: String, timeout: Duration },
    #[error("cannot turn on IPv4 forwarding: {0}")]
    Sysctl(String),
    #[error(transparent)]
    Nft(#[from] nft::NftError),
}

impl NetError {
    /// The kernel's errno (positive, e.g. 17 for EEXIST) when the kernel refused a request.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetError::Netlink { source, .. } => rtnetlink_errno(source),
            _ => None,
        }
    }
}

/// The positive errno carried by a netlink error answer, if that is what `e` is.
pub(crate) fn rtnetlink_errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.code.map(|c| c.get().abs()),
        _ => None,
    }
}
