//! Starting DNS (on its own thread) and the router side: forwarding and boma's nftables table,
//! the WAN DHCP client, the Wi-Fi daemon (access point, or client on the WAN), the interface
//! addresses DNS answers with, and the DHCP server with the provider that turns its leases into names.

use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::{Listening, StartError};
use crate::config::Config;
use crate::dynamic::{Fragment, Store};
use crate::{dns, net, providers};

/// What the network side starts with: whether the first link set-up worked, and the DHCP
/// server's configuration with its channels.
pub(crate) struct NetParts {
    pub links_ok: bool,
    pub dhcp: Option<(
        net::dhcp::ServerConfig,
        (net::dhcp::Channels, net::dhcp::Handle),
    )>,
}

/// Forwarding and boma's nftables table (the redirect targets are bound by now), the WAN DHCP
/// client, the interface addresses `[dns] address = "auto"` answers with, the DHCP server and
/// the provider that feeds its leases to the assembler.
pub(crate) fn start_network(
    cfg: &Config,
    parts: NetParts,
    listening: &[Listening],
    dns: Option<&Arc<dns::Resolver>>,
    frag_tx: &mpsc::Sender<(String, Fragment)>,
    tasks: &mut JoinSet<()>,
    stop: &watch::Receiver<bool>,
) -> (net::setup::Network, Option<net::dhcp::Handle>) {
    let ports = net::setup::Ports {
        dns: (listening.iter())
            .find(|l| l.what == "dns")
            .map(|l| l.addr.port()),
        http: (cfg.nat.as_ref())
            .and_then(|n| listening.iter().find(|l| l.name == n.http_entry_point))
            .map(|l| l.addr.port()),
    };
    let network = net::setup::start(cfg, ports, parts.links_ok, tasks, stop.clone());
    net::setup::spawn_wan_dhcp(cfg, tasks, stop.clone());
    net::wifi::spawn(cfg, tasks, stop.clone());
    let follow = (cfg.dns.as_ref()).is_some_and(|d| d.auto_address() || d.local_service());
    if let (Some(resolver), true) = (dns, follow) {
        let resolver = Arc::clone(resolver);
        let wan = cfg.wan.as_ref().map(|w| w.interface.clone());
        net::setup::follow_addresses(tasks, stop.clone(), wan, move |subnets| {
            resolver.set_interfaces(subnets)
        });
    }
    let dhcp = parts.dhcp.map(|(server, (channels, handle))| {
        let interface = server.interface.clone();
        tasks.spawn(net::dhcp::run(server, channels, stop.clone()));
        tasks.spawn(providers::dhcp::run(
            handle.clone(),
            interface,
            frag_tx.clone(),
            stop.clone(),
        ));
        handle
    });
    (network, dhcp)
}

/// The DNS server on its own thread, when `[dns]` is there; its addresses join `listening`.
pub(crate) fn start_dns(
    cfg: &Config,
    store: &Store,
    stop: &watch::Receiver<bool>,
    listening: &mut Vec<Listening>,
    threads: &mut Vec<std::thread::JoinHandle<()>>,
) -> Result<Option<Arc<dns::Resolver>>, StartError> {
    let Some(dns_cfg) = &cfg.dns else {
        return Ok(None);
    };
    let (started, thread) = dns::spawn(dns_cfg, store, stop)?;
    threads.push(thread);
    listening.extend(started.addrs.iter().map(|&addr| Listening {
        what: "dns",
        name: "dns".into(),
        addr,
        scheme: "udp+tcp",
    }));
    Ok(Some(started.resolver))
}
