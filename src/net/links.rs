//! Links, addresses and routes of the current network namespace over rtnetlink: the LAN bridge
//! and its members, the LAN and static WAN addresses, the default route, IPv4 forwarding, and a
//! watch of the IPv4 addresses (which the DNS and DHCP sides use to learn what to bind to).
//!
//! Every operation is idempotent (an existing bridge, address or route is fine) so that a restart
//! or a config reload can simply run the set-up again, and every request to the kernel waits at
//! most [`REQUEST_TIMEOUT`]. This module only adds and raises; it never deletes a link or an
//! address, never touches an interface it was not named, and never runs `ip`.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{FutureExt, StreamExt, TryStreamExt};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::{InfoKind, LinkAttribute, LinkInfo, LinkMessage};
use rtnetlink::{Handle, LinkBridge, LinkUnspec, MulticastGroup, RouteMessageBuilder};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{NetError, REQUEST_TIMEOUT};
use crate::config::is_ifname;

const EEXIST: i32 = 17;
const ENODEV: i32 = 19;

/// First and longest wait before [`watch_addresses`] reopens a failed netlink socket.
const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// The LAN side: an interface (a bridge when `bridge` names members) and its address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LanSpec {
    /// The interface that carries the address; the bridge's name when `bridge` is not empty.
    pub interface: String,
    pub address: Ipv4Addr,
    pub prefix: u8,
    /// Whether `interface` is a bridge (created when missing).
    pub bridged: bool,
    /// Members to enslave to the bridge.
    pub bridge: Vec<String>,
}

/// One IPv4 address of one interface.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IfAddr {
    pub index: u32,
    pub name: String,
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

/// An rtnetlink connection; its driver task ends when this is dropped.
struct Conn {
    handle: Handle,
    task: JoinHandle<()>,
}

impl Conn {
    fn open() -> Result<Self, NetError> {
        let (conn, handle, _) = rtnetlink::new_connection().map_err(NetError::Socket)?;
        Ok(Conn {
            handle,
            task: tokio::spawn(conn),
        })
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Runs one request with the timeout, naming it in the error.
async fn bounded<T>(
    what: impl FnOnce() -> String,
    fut: impl Future<Output = Result<T, rtnetlink::Error>>,
) -> Result<T, NetError> {
    match tokio::time::timeout(REQUEST_TIMEOUT, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(source)) => Err(NetError::Netlink {
            what: what(),
            source,
        }),
        Err(_) => Err(NetError::Timeout {
            what: what(),
            timeout: REQUEST_TIMEOUT,
        }),
    }
}

/// Like [`bounded`], with the kernel's EEXIST counted as success.
async fn bounded_exists_ok(
    what: impl FnOnce() -> String,
    fut: impl Future<Output = Result<(), rtnetlink::Error>>,
) -> Result<(), NetError> {
    match bounded(what, fut).await {
        Err(e) if e.errno() == Some(EEXIST) => Ok(()),
        r => r,
    }
}

fn check_name(name: &str) -> Result<(), NetError> {
    if is_ifname(name) {
        Ok(())
    } else {
        Err(NetError::BadName(name.to_string()))
    }
}

fn check_prefix(prefix: u8) -> Result<(), NetError> {
    if prefix <= 32 {
        Ok(())
    } else {
        Err(NetError::BadPrefix(prefix))
    }
}

/// The link called `name`, or None when there is none.
async fn link_by_name(h: &Handle, name: &str) -> Result<Option<LinkMessage>, NetError> {
    let mut answers = h.link().get().match_name(name.to_string()).execute();
    match bounded(
        || format!("looking up interface {name}"),
        answers.try_next(),
    )
    .await
    {
        Err(e) if e.errno() == Some(ENODEV) => Ok(None),
        r => r,
    }
}

async fn index_of(h: &Handle, name: &str) -> Result<u32, NetError> {
    match link_by_name(h, name).await? {
        Some(link) => Ok(link.header.index),
        None => Err(NetError::NoSuchInterface(name.to_string())),
    }
}

fn is_bridge(link: &LinkMessage) -> bool {
    link.attributes.iter().any(|a| match a {
        LinkAttribute::LinkInfo(infos) => infos
            .iter()
            .any(|i| matches!(i, LinkInfo::Kind(InfoKind::Bridge))),
        _ => false,
    })
}

/// The index of bridge `name`, created (and raised) when missing.
async fn ensure_bridge(h: &Handle, name: &str) -> Result<u32, NetError> {
    if let Some(link) = link_by_name(h, name).await? {
        if !is_bridge(&link) {
            return Err(NetError::NotABridge(name.to_string()));
        }
        return Ok(link.header.index);
    }
    let add = h.link().add(LinkBridge::new(name).build()).execute();
    bounded_exists_ok(|| format!("creating bridge {name}"), add).await?;
    index_of(h, name).await
}

async fn set_up(h: &Handle, index: u32, name: &str) -> Result<(), NetError> {
    let set = h.link().set(LinkUnspec::new_with_index(index).up().build());
    bounded(|| format!("setting {name} up"), set.execute()).await
}

async fn add_address(
    h: &Handle,
    index: u32,
    name: &str,
    address: Ipv4Addr,
    prefix: u8,
) -> Result<(), NetError> {
    let add = h
        .address()
        .add(index, IpAddr::V4(address), prefix)
        .execute();
    bounded_exists_ok(|| format!("adding {address}/{prefix} to {name}"), add).await
}

/// Sets up the LAN: the bridge `interface` with its members when `bridge` names any (an existing
/// bridge is reused, members are enslaved and raised), the address (already present is fine),
/// and the interface raised. Returns the interface's index.
pub async fn setup_lan(spec: &LanSpec) -> Result<u32, NetError> {
    check_name(&spec.interface)?;
    spec.bridge.iter().try_for_each(|m| check_name(m))?;
    check_prefix(spec.prefix)?;
    let conn = Conn::open()?;
    let h = &conn.handle;
    let index = if !spec.bridged {
        index_of(h, &spec.interface).await?
    } else {
        // Every member must exist before anything is created.
        let mut members = Vec::with_capacity(spec.bridge.len());
        for m in &spec.bridge {
            members.push((index_of(h, m).await?, m.as_str()));
        }
        let bridge = ensure_bridge(h, &spec.interface).await?;
        for (index, name) in members {
            let set = LinkUnspec::new_with_index(index)
                .controller(bridge)
                .up()
                .build();
            let what = || format!("adding {name} to bridge {}", spec.interface);
            bounded(what, h.link().set(set).execute()).await?;
        }
        bridge
    };
    add_address(h, index, &spec.interface, spec.address, spec.prefix).await?;
    set_up(h, index, &spec.interface).await?;
    Ok(index)
}

/// Sets up a WAN interface with a static address: the address (present is fine), the link
/// raised, and the default route via `gateway` (replacing any default route in the main table).
pub async fn setup_wan_static(
    interface: &str,
    address: Ipv4Addr,
    prefix: u8,
    gateway: Option<Ipv4Addr>,
) -> Result<(), NetError> {
    check_name(interface)?;
    check_prefix(prefix)?;
    let conn = Conn::open()?;
    let h = &conn.handle;
    let index = index_of(h, interface).await?;
    add_address(h, index, interface, address, prefix).await?;
    set_up(h, index, interface).await?;
    if let Some(gw) = gateway {
        let route = RouteMessageBuilder::<Ipv4Addr>::new()
            .output_interface(index)
            .gateway(gw)
            .build();
        let add = h.route().add(route).replace().execute();
        bounded(|| format!("default route via {gw} on {interface}"), add).await?;
    }
    Ok(())
}

/// The index of interface `name`, or None when there is none.
pub async fn interface_index(name: &str) -> Result<Option<u32>, NetError> {
    check_name(name)?;
    let conn = Conn::open()?;
    Ok(link_by_name(&conn.handle, name)
        .await?
        .map(|l| l.header.index))
}

/// Turns IPv4 forwarding between interfaces on or off (`/proc/sys/net/ipv4/ip_forward`).
pub fn set_ipv4_forwarding(on: bool) -> std::io::Result<()> {
    std::fs::write(
        "/proc/sys/net/ipv4/ip_forward",
        if on { "1\n" } else { "0\n" },
    )
}

/// Every IPv4 address of every interface, sorted by interface index, then address.
pub async fn ipv4_addresses() -> Result<Vec<IfAddr>, NetError> {
    let conn = Conn::open()?;
    dump_addresses(&conn.handle).await
}

async fn dump_addresses(h: &Handle) -> Result<Vec<IfAddr>, NetError> {
    let links: Vec<LinkMessage> = bounded(
        || "listing interfaces".into(),
        h.link().get().execute().try_collect(),
    )
    .await?;
    let names: HashMap<u32, String> = links
        .iter()
        .filter_map(|l| {
            l.attributes.iter().find_map(|a| match a {
                LinkAttribute::IfName(n) => Some((l.header.index, n.clone())),
                _ => None,
            })
        })
        .collect();
    let mut get = h.address().get();
    get.message_mut().header.family = AddressFamily::Inet;
    let msgs: Vec<_> = bounded(|| "listing addresses".into(), get.execute().try_collect()).await?;
    let mut out: Vec<IfAddr> = msgs
        .iter()
        .filter_map(|m| {
            // IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer on a
            // point-to-point link, and the same as IFA_LOCAL elsewhere.
            let local = m.attributes.iter().find_map(|a| match a {
                AddressAttribute::Local(IpAddr::V4(a)) => Some(*a),
                _ => None,
            });
            let addr = local.or_else(|| {
                m.attributes.iter().find_map(|a| match a {
                    AddressAttribute::Address(IpAddr::V4(a)) => Some(*a),
                    _ => None,
                })
            })?;
            Some(IfAddr {
                index: m.header.index,
                name: names.get(&m.header.index).cloned().unwrap_or_default(),
                addr,
                prefix: m.header.prefix_len,
            })
        })
        .collect();
    out.sort();
    out.dedup();
    Ok(out)
}

/// Publishes `list` unless it equals what `tx` holds.
fn publish(tx: &watch::Sender<Arc<Vec<IfAddr>>>, list: Vec<IfAddr>) {
    let mut list = Some(list);
    tx.send_if_modified(|cur| match list.take() {
        Some(new) if **cur != new => {
            *cur = Arc::new(new);
            true
        }
        _ => false,
    });
}

/// Keeps `tx` holding the current IPv4 addresses ([`ipv4_addresses`]): publishes at start and
/// again whenever an IPv4 address is added or removed (RTNLGRP_IPV4_IFADDR), nothing when the
/// list did not change. A failed socket is reopened after a growing pause (0.2 s to 30 s).
/// Returns when `stop` becomes true (or its sender is gone), or when `tx` has no receivers left.
pub async fn watch_addresses(tx: watch::Sender<Arc<Vec<IfAddr>>>, mut stop: watch::Receiver<bool>) {
    let mut backoff = BACKOFF_MIN;
    loop {
        if *stop.borrow_and_update() || tx.is_closed() {
            return;
        }
        match watch_once(&tx, &mut stop, &mut backoff).await {
            Ok(()) => return,
            Err(e) => tracing::warn!(error = %e, retry_in = ?backoff, "address watch failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            r = stop.changed() => if r.is_err() || *stop.borrow_and_update() { return },
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// One life of the watch socket. Ok: stop was asked for (or nobody listens); Err: start again.
async fn watch_once(
    tx: &watch::Sender<Arc<Vec<IfAddr>>>,
    stop: &mut watch::Receiver<bool>,
    backoff: &mut Duration,
) -> Result<(), NetError> {
    // Subscribe before the first dump so that no change between the two is missed.
    let (conn, handle, mut events) =
        rtnetlink::new_multicast_connection(&[MulticastGroup::Ipv4Ifaddr])
            .map_err(NetError::Socket)?;
    let conn = Conn {
        handle,
        task: tokio::spawn(conn),
    };
    publish(tx, dump_addresses(&conn.handle).await?);
    *backoff = BACKOFF_MIN;
    loop {
        tokio::select! {
            r = stop.changed() => if r.is_err() || *stop.borrow_and_update() { return Ok(()) },
            _ = tx.closed() => return Ok(()),
            ev = events.next() => {
                if ev.is_none() {
                    let closed = std::io::Error::other("rtnetlink event socket closed");
                    return Err(NetError::Socket(closed));
                }
                // One dump answers a burst of events.
                while let Some(Some(_)) = events.next().now_or_never() {}
                publish(tx, dump_addresses(&conn.handle).await?);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unchanged_list_is_not_published_again() {
        let a = IfAddr {
            index: 2,
            name: "br-lan".into(),
            addr: Ipv4Addr::new(10, 99, 1, 1),
            prefix: 24,
        };
        let (tx, mut rx) = watch::channel(Arc::new(Vec::new()));
        publish(&tx, vec![a.clone()]);
        assert!(rx.has_changed().unwrap());
        assert_eq!(rx.borrow_and_update().as_slice(), std::slice::from_ref(&a));
        publish(&tx, vec![a]);
        assert!(!rx.has_changed().unwrap());
        publish(&tx, Vec::new());
        assert!(rx.has_changed().unwrap());
    }
}
