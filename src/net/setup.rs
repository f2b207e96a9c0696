//! The gateway's network, brought up from `[lan]`, `[wan]` and `[nat]`: the LAN interface or
//! bridge with its address and a static WAN ([`links_up`], tried once before DNS and the proxy
//! bind so they can listen on the LAN address), then IPv4 forwarding and boma's nftables table
//! ([`start`], once the redirect targets are known). What fails is retried in the background
//! with a growing pause and logged, never skipped: a USB Ethernet adapter may appear seconds
//! after boot, and the image loads the netfilter modules while boma starts. DNS and HTTP serve
//! meanwhile. [`Network::down`] removes boma's nftables table on a clean shutdown and leaves
//! addresses and bridges in place, so a restart does not drop the LAN.
//!
//! WAN DHCP uses the image's busybox `udhcpc` rather than a client of boma's own: it is already
//! in the image (the server role uses it too), handles renew/rebind/expiry and ARP checks, and
//! its script is the one place that owns the WAN address, route and resolv.conf; boma only
//! restarts it when it exits.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

use super::{NetError, links, nft, supervise};
use crate::config::{Config, WanMode};

/// What must be undone at shutdown.
pub struct Network {
    nat: bool,
}

/// Longest pause between two attempts.
const MAX_PAUSE: Duration = Duration::from_secs(30);

impl Network {
    /// Remove boma's nftables table (addresses and bridges stay).
    pub fn down(&self) {
        if self.nat
            && let Err(e) = nft::remove()
        {
            tracing::warn!(error = %e, "net: cannot remove the nftables table boma");
        }
    }
}

/// The ports the redirects go to, known once DNS and the proxy are bound.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ports {
    pub dns: Option<u16>,
    pub http: Option<u16>,
}

/// Bring up the LAN and a static WAN (before anything binds).
pub async fn links_up(cfg: &Config) -> Result<(), NetError> {
    if let Some(lan) = &cfg.lan {
        let spec = links::LanSpec {
            interface: lan.interface.clone(),
            address: lan.address.addr,
            prefix: lan.address.prefix,
            bridged: !lan.bridge.is_empty(),
            // An access point joins the bridge through hostapd, once it is in AP mode.
            bridge: (lan.bridge.iter())
                .filter(|m| Some(m.as_str()) != super::wifi::ap_bridge_member(cfg))
                .cloned()
                .collect(),
        };
        links::setup_lan(&spec).await?;
        tracing::info!(interface = %lan.interface, address = %lan.address, "net: LAN up");
    }
    if let Some(wan) = &cfg.wan
        && wan.mode == WanMode::Static
        && let Some(addr) = wan.address
    {
        links::setup_wan_static(&wan.interface, addr.addr, addr.prefix, wan.gateway).await?;
        tracing::info!(interface = %wan.interface, address = %addr, "net: WAN up (static)");
    }
    Ok(())
}

/// Forwarding and boma's nftables table, once the redirect targets are known; whatever failed
/// so far (`links_ok` false: [`links_up`] did) is retried in `tasks` until it works or `stop`.
pub fn start(
    cfg: &Config,
    ports: Ports,
    links_ok: bool,
    tasks: &mut JoinSet<()>,
    stop: watch::Receiver<bool>,
) -> Network {
    let network = Network {
        nat: cfg.lan.is_some() && cfg.nat.is_some(),
    };
    if links_ok {
        match firewall_up(cfg, ports) {
            Ok(()) => return network,
            Err(e) => {
                tracing::warn!(error = %e, "net: cannot apply the nftables table yet; retrying")
            }
        }
    }
    let cfg = cfg.clone();
    tasks.spawn(async move {
        let mut stop = stop;
        let mut pause = Duration::from_secs(1);
        let mut links_ok = links_ok;
        let mut last_error = String::new();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stop.changed() => return,
            }
            let attempt = async {
                if !links_ok {
                    links_up(&cfg).await?;
                    links_ok = true;
                }
                firewall_up(&cfg, ports)
            };
            match attempt.await {
                Ok(()) => return,
                Err(e) => {
                    let error = e.to_string();
                    if error != last_error {
                        tracing::warn!(%error, "net: set-up still failing; retrying");
                        last_error = error;
                    }
                }
            }
            pause = (pause * 2).min(MAX_PAUSE);
        }
    });
    network
}

/// The nftables table, then forwarding: the LAN is never forwarded to the WAN unmasqueraded,
/// nor the WAN let in unfiltered.
fn firewall_up(cfg: &Config, ports: Ports) -> Result<(), NetError> {
    let (Some(lan), Some(nat)) = (&cfg.lan, &cfg.nat) else {
        return Ok(());
    };
    let wan = cfg.wan.as_ref().map(|w| w.interface.clone());
    let forward = wan.is_some();
    let spec = nft::NatSpec {
        lan: lan.interface.clone(),
        wan,
        masquerade: nat.masquerade,
        redirect_dns: ports.dns.filter(|_| nat.redirect_dns),
        redirect_http: ports.http.filter(|_| nat.redirect_http),
    };
    nft::apply(&spec)?;
    tracing::info!(rules = %nft::render(&spec).replace('\n', " "), "net: nftables table inet boma applied");
    if forward {
        links::set_ipv4_forwarding(true).map_err(|e| NetError::Sysctl(e.to_string()))?;
    }
    Ok(())
}

/// With `[wan] mode = "dhcp"`: run the DHCP client on the WAN and restart it when it exits
/// (with a growing pause), until `stop`.
pub fn spawn_wan_dhcp(cfg: &Config, tasks: &mut JoinSet<()>, stop: watch::Receiver<bool>) {
    let Some(wan) = cfg.wan.clone().filter(|w| w.mode == WanMode::Dhcp) else {
        return;
    };
    let mut args: Vec<std::ffi::OsString> = ["-f", "-i", &wan.interface, "-s"]
        .iter()
        .map(Into::into)
        .collect();
    args.push(wan.dhcp_script.into());
    args.extend(["-x".into(), "hostname:boma".into()]);
    let daemon = supervise::Daemon {
        name: "WAN DHCP client",
        program: wan.dhcp_client,
        args,
        interface: wan.interface,
        show_output: false,
        file: None,
    };
    supervise::spawn(daemon, tasks, stop);
}

/// Follow the host's IPv4 addresses and hand their subnets to `set` whenever they change, until
/// `stop`, each with whether it is on interface `wan`. For DNS's `address = "auto"` (every
/// subnet) and `allowed_networks = ["local"]` (all but the WAN's).
pub fn follow_addresses(
    tasks: &mut JoinSet<()>,
    stop: watch::Receiver<bool>,
    wan: Option<String>,
    set: impl Fn(Vec<(crate::config::Ipv4Cidr, bool)>) + Send + 'static,
) {
    let (tx, mut rx) = watch::channel(std::sync::Arc::new(Vec::new()));
    tasks.spawn(links::watch_addresses(tx, stop.clone()));
    let mut stop = stop;
    tasks.spawn(async move {
        loop {
            let list = (rx.borrow_and_update().iter())
                .map(|a| {
                    let cidr = crate::config::Ipv4Cidr {
                        addr: a.addr,
                        prefix: a.prefix,
                    };
                    (cidr, wan.as_deref() == Some(a.name.as_str()))
                })
                .collect();
            set(list);
            tokio::select! {
                r = rx.changed() => if r.is_err() { break },
                _ = stop.changed() => return,
            }
        }
        let _ = stop.changed().await;
    });
}
