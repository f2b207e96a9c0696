//! Where a container is reached: its server URL in a load balancer, from the `server.*` labels,
//! the address on the chosen network (following `network_mode: container:X` and host mode),
//! and the lowest exposed port. Pure: no I/O.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::labels::label_tree;
use super::{COMPOSE_PROJECT, Container, Settings};
use crate::dynamic::schema::Server;

/// `...loadbalancer.server.*`: the container's own server in a service.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ServerLabels {
    pub port: Option<String>,
    pub scheme: Option<String>,
    pub url: Option<String>,
    pub weight: Option<u32>,
    #[serde(rename = "preservePath", default)]
    pub preserve_path: bool,
}

/// Longest chain of `network_mode: container:X` followed.
const MAX_NETWORK_HOPS: usize = 4;

/// This container's server in a load balancer.
pub(super) fn server(
    c: &Container,
    l: &ServerLabels,
    address: &Result<String, String>,
) -> Result<Server, String> {
    let url = match &l.url {
        Some(url) if !url.is_empty() => url.clone(),
        _ => {
            let ip = address.as_ref().map_err(Clone::clone)?;
            let port = match l.port.as_deref().filter(|p| !p.is_empty()) {
                Some(p) => p
                    .trim()
                    .parse::<u16>()
                    .map_err(|_| format!("server.port `{p}` is not a port number"))?,
                None => lowest_port(c).ok_or("no exposed port and no server.port label")?,
            };
            let scheme = l
                .scheme
                .as_deref()
                .filter(|s| !s.is_empty())
                .unwrap_or("http");
            if ip.contains(':') {
                format!("{scheme}://[{ip}]:{port}")
            } else {
                format!("{scheme}://{ip}:{port}")
            }
        }
    };
    Ok(Server {
        url,
        weight: l.weight,
        preserve_path: l.preserve_path,
    })
}

/// The lowest exposed port (Traefik's choice when there is no port label).
fn lowest_port(c: &Container) -> Option<u16> {
    c.ports.iter().map(|(p, _)| *p).min()
}

/// The address boma reaches `c` at: on `network` when given and joined, in host mode the
/// engine's host, through the container whose network it shares, else its first network (by
/// name; Traefik takes any).
pub(super) fn address(
    c: &Container,
    all: &BTreeMap<String, Container>,
    network: Option<&str>,
    s: &Settings,
    hops: usize,
) -> Result<String, String> {
    if let Some(ip) = network.and_then(|net| on_network(c, net)) {
        return Ok(ip);
    }
    if c.network_mode == "host" {
        return Ok(s.host_address.clone());
    }
    if let Some(target) = c.network_mode.strip_prefix("container:") {
        if hops >= MAX_NETWORK_HOPS {
            return Err("too many `network_mode: container:` hops".into());
        }
        let other = (all.get(target))
            .or_else(|| (all.values()).find(|o| o.name == target || o.id.starts_with(target)))
            .ok_or_else(|| {
                format!("it shares the network of container {target}, which is not running")
            })?;
        let (tree, _) = label_tree(other);
        let own = (tree.child("docker"))
            .and_then(|d| d.leaf("network"))
            .map(str::to_string);
        return address(other, all, own.as_deref().or(network), s, hops + 1);
    }
    first_address(c).ok_or_else(|| "it has no IP address on any network".to_string())
}

/// `c`'s address on `network`, also found under compose's `<project>_<network>` name.
fn on_network(c: &Container, network: &str) -> Option<String> {
    let project = c.labels.get(COMPOSE_PROJECT);
    (c.networks.get(network))
        .or_else(|| project.and_then(|p| c.networks.get(&format!("{p}_{network}"))))
        .filter(|ip| !ip.is_empty())
        .cloned()
}

fn first_address(c: &Container) -> Option<String> {
    c.networks.values().find(|ip| !ip.is_empty()).cloned()
}

/// Is `network` missing from `c` (which then falls back to another one)?
pub(super) fn network_missing(c: &Container, network: &str) -> bool {
    let shared = c.network_mode == "host" || c.network_mode.starts_with("container:");
    !shared && on_network(c, network).is_none()
}
