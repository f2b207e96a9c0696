//! One container → its routers, services and middlewares, as Traefik's docker provider builds
//! them: `traefik.enable` and the provider's `exposedByDefault`, constraints, health, the
//! service named after the container (or compose `<service>-<project>`) when no service label
//! exists, the server address from the chosen network and the lowest exposed port, a router
//! named after the service with the default rule when no router label exists, and a router's
//! service defaulting to the container's only service.
//!
//! `boma.*` labels use the same grammar and are laid over `traefik.*` ones (a `boma.` key wins).
//! Every label that is not used is reported: TCP/UDP/TLS labels (not served yet), unknown keys,
//! bad values. An object with a bad label is left out whole (a router whose middleware is
//! broken must not serve without it); a container whose address cannot be found is left out.
//! Pure: no I/O.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::labels::{self, Node};
use super::{Container, Settings};
use crate::dynamic::Problem;
use crate::dynamic::schema::{Http, Router, Server, Service};
use crate::rule::template::{Model, normalize};
use crate::runtime::middlewares::MiddlewareConfig;

const COMPOSE_PROJECT: &str = "com.docker.compose.project";
const COMPOSE_SERVICE: &str = "com.docker.compose.service";
/// Longest chain of `network_mode: container:X` followed.
const MAX_NETWORK_HOPS: usize = 4;

/// `...loadbalancer.server.*`: the container's own server in a service.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerLabels {
    port: Option<String>,
    scheme: Option<String>,
    url: Option<String>,
    weight: Option<u32>,
    #[serde(rename = "preservePath", default)]
    preserve_path: bool,
}

/// `traefik.docker.*`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DockerLabels {
    network: Option<String>,
    #[serde(rename = "lbswarm")]
    lb_swarm: Option<bool>,
    #[serde(rename = "allowNonRunning")]
    allow_non_running: Option<bool>,
}

/// What one container contributes.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Decoded {
    /// Sort key for merging (`<service>-<id>`, Traefik's order).
    pub key: String,
    /// The container, for messages (`name@namespace`).
    pub origin: String,
    pub http: Http,
    pub problems: Vec<Problem>,
}

/// Traefik's service name of a container: compose `<service>-<project>`, else its name;
/// normalized (`normalize`).
pub(super) fn service_name(c: &Container) -> String {
    let get = |k: &str| c.labels.get(k).filter(|v| !v.is_empty());
    match (get(COMPOSE_SERVICE), get(COMPOSE_PROJECT)) {
        (Some(service), Some(project)) => normalize(&format!("{service}_{project}")),
        _ => normalize(c.service.as_deref().unwrap_or(&c.name)),
    }
}

/// Go's `strconv.ParseBool`.
pub(super) fn go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Both label trees, `boma.*` laid over `traefik.*`, and the keys that could not be read.
fn label_tree(c: &Container) -> (Node, Vec<labels::BadLabel>) {
    let (mut tree, mut bad) = labels::parse(&c.labels, "traefik");
    let (boma, bad_boma) = labels::parse(&c.labels, "boma");
    bad.extend(bad_boma);
    overlay(&mut tree, boma);
    (tree, bad)
}

fn overlay(dst: &mut Node, src: Node) {
    if src.value.is_some() {
        dst.value = src.value;
        dst.key = src.key;
    }
    for child in src.children {
        match dst
            .children
            .iter_mut()
            .find(|d| d.name.eq_ignore_ascii_case(&child.name))
        {
            Some(d) => overlay(d, child),
            None => dst.children.push(child),
        }
    }
}

/// The part of the configuration `c` contributes, or `None` when it is not routed at all
/// (disabled, filtered out by constraints, not running, not healthy).
pub(super) fn decode(
    c: &Container,
    all: &BTreeMap<String, Container>,
    s: &Settings,
) -> Option<Decoded> {
    let origin = format!("{}@{}", c.name, s.namespace);
    let mut d = Decoded {
        key: format!("{}-{}", service_name(c), c.id),
        origin: origin.clone(),
        ..Decoded::default()
    };
    let source = format!("container {origin}");
    let (mut tree, bad) = label_tree(c);

    let enable = match tree.take("enable") {
        None => s.exposed_by_default,
        Some(n) => match n.value.as_deref().and_then(go_bool) {
            Some(b) if n.children.is_empty() => b,
            _ => {
                // A container that meant to say "off" must not be exposed by a typo.
                d.problems.push(Problem::new(
                    source,
                    format!(
                        "label {}: not a boolean; the container is not exposed",
                        n.key.as_deref().unwrap_or("traefik.enable")
                    ),
                ));
                return Some(d);
            }
        },
    };
    if !enable {
        return None;
    }
    if s.constraints
        .as_ref()
        .is_some_and(|k| !k.matches(&c.labels))
    {
        return None;
    }
    if !c.running {
        return None;
    }
    let healthy = c.health.as_deref().is_none_or(|h| h == "healthy");
    if !healthy && !s.allow_empty_services {
        return None;
    }
    let mut problem = |msg: String| d.problems.push(Problem::new(source.clone(), msg));
    // A malformed label must not leave its object half-configured (a router without the
    // middleware it names would serve unprotected): the object goes, or the whole container
    // when the label cannot be tied to one object.
    let mut broken: Vec<(String, String)> = Vec::new();
    let mut container_broken = false;
    for b in bad {
        problem(format!("label {}: {}", b.key, b.why));
        let p: Vec<String> = b.prefix.iter().map(|s| s.to_ascii_lowercase()).collect();
        match p.as_slice() {
            [http, kind, name, ..]
                if http == "http"
                    && ["routers", "services", "middlewares"].contains(&kind.as_str()) =>
            {
                broken.push((kind.clone(), name.clone()));
            }
            [root, ..]
                if !(["enable", "docker", "http"].contains(&root.as_str())
                    || s.swarm && root == "swarm") => {}
            _ => container_broken = true,
        }
    }
    if container_broken {
        problem("a malformed label cannot be tied to one router, service or middleware; the container is not routed".into());
        return Some(d);
    }
    let is_broken = |kind: &str, name: &str| {
        broken
            .iter()
            .any(|(k, n)| k == kind && n.eq_ignore_ascii_case(name))
    };

    // Provider-specific labels: `traefik.docker.*`, and on a swarm also `traefik.swarm.*`
    // (Traefik 3's spelling; swarm services written for Traefik 2 use `docker`).
    let mut docker = DockerLabels::default();
    for section in ["docker", "swarm"] {
        let Some(n) = tree.take(section) else {
            continue;
        };
        if section == "swarm" && !s.swarm {
            problem(format!(
                "label {}: Swarm labels on a plain container; ignored",
                n.keys().join(", ")
            ));
            continue;
        }
        match labels::deserialize::<DockerLabels>(&n, &format!("traefik.{section}")) {
            Ok(v) => {
                docker.network = v.network.or(docker.network);
                docker.lb_swarm = v.lb_swarm.or(docker.lb_swarm);
                docker.allow_non_running = v.allow_non_running.or(docker.allow_non_running);
            }
            Err(errs) => errs.into_iter().for_each(&mut problem),
        }
    }
    if docker.allow_non_running == Some(true) {
        problem("label traefik.docker.allownonrunning: not supported; only running containers are routed".into());
    }
    if docker.lb_swarm.is_some() && !s.swarm {
        problem("label traefik.docker.lbswarm: only meaningful for Swarm services; ignored".into());
    }
    let mut tcp_udp = false;
    for (kind, what) in [
        ("tcp", "TCP routing"),
        ("udp", "UDP routing"),
        ("tls", "TLS options"),
    ] {
        if let Some(n) = tree.take(kind) {
            tcp_udp |= kind != "tls";
            problem(format!(
                "{what} from labels is not supported yet; ignored: {}",
                n.keys().join(", ")
            ));
        }
    }
    let mut http = tree.take("http").unwrap_or_default();
    for n in tree.children.drain(..) {
        problem(format!(
            "label {}: unknown label; ignored",
            n.keys().join(", ")
        ));
    }
    let mut routers = http.take("routers").unwrap_or_default();
    let mut services = http.take("services").unwrap_or_default();
    let mut middlewares = http.take("middlewares").unwrap_or_default();
    for n in http.children.drain(..) {
        let what = if n.name.eq_ignore_ascii_case("serverstransports") {
            "servers transports are not supported yet"
        } else {
            "unknown label"
        };
        problem(format!("label {}: {what}; ignored", n.keys().join(", ")));
    }
    // Objects whose only labels are malformed still exist (and are then left out): a broken
    // router label must not turn into a default router.
    for (kind, name) in &broken {
        let list = match kind.as_str() {
            "routers" => &mut routers,
            "services" => &mut services,
            _ => &mut middlewares,
        };
        if list.child(name).is_none() {
            list.children.push(Node {
                name: name.clone(),
                ..Node::default()
            });
        }
    }
    if tcp_udp
        && routers.children.is_empty()
        && services.children.is_empty()
        && middlewares.children.is_empty()
    {
        return Some(d);
    }

    // Services, each with this container's server.
    let name = service_name(c);
    if services.children.is_empty() {
        services.children.push(Node {
            name: name.clone(),
            children: vec![Node {
                name: "loadBalancer".into(),
                value: Some("true".into()),
                ..Node::default()
            }],
            ..Node::default()
        });
    }
    let service_count = services.children.len();
    let only_service = (service_count == 1).then(|| services.children[0].name.clone());
    let network = docker.network.as_deref().or(s.network.as_deref());
    if let Some(net) = network
        && network_missing(c, net)
    {
        problem(format!(
            "network `{net}` is not one of the container's networks ({}); using another",
            c.networks.keys().cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    let address = address(c, all, network, s, 0);
    for mut node in services.children.drain(..) {
        let what = format!("service {}", node.name);
        if let Some(why) = unusable(&what, &node, is_broken("services", &node.name)) {
            problem(why);
            continue;
        }
        let mut server_node = None;
        if let Some(lb) =
            (node.children.iter_mut()).find(|n| n.name.eq_ignore_ascii_case("loadbalancer"))
        {
            server_node = lb.take("server");
            if let Some(servers) = lb.take("servers") {
                problem(format!(
                    "label {}: use `server.*` labels (one server per container); ignored",
                    servers.keys().join(", ")
                ));
            }
            if lb.children.is_empty() {
                lb.value = Some("true".into());
            }
        }
        let server_labels = match &server_node {
            Some(n) => match labels::deserialize::<ServerLabels>(n, &what) {
                Ok(v) => v,
                Err(errs) => {
                    errs.into_iter().for_each(&mut problem);
                    continue;
                }
            },
            None => ServerLabels::default(),
        };
        let mut service = match labels::deserialize::<Service>(&node, &what) {
            Ok(v) => v,
            Err(errs) => {
                errs.into_iter().for_each(&mut problem);
                continue;
            }
        };
        let Service::LoadBalancer(lb) = &mut service else {
            if server_node.is_some() {
                problem(format!(
                    "{what}: server labels need a loadBalancer service; ignored"
                ));
            }
            d.http.services.insert(node.name.clone(), service);
            continue;
        };
        if healthy {
            match server(c, &server_labels, &address) {
                Ok(srv) => lb.servers.push(srv),
                Err(why) => {
                    // Traefik leaves the whole container out in this case.
                    problem(format!("{what}: {why}; the container is not routed"));
                    d.http = Http::default();
                    return Some(d);
                }
            }
        }
        d.http.services.insert(node.name.clone(), service);
    }

    for node in middlewares.children.drain(..) {
        let what = format!("middleware {}", node.name);
        if let Some(why) = unusable(&what, &node, is_broken("middlewares", &node.name)) {
            problem(why);
            continue;
        }
        match labels::deserialize::<MiddlewareConfig>(&node, &what) {
            Ok(m) => {
                d.http.middlewares.insert(node.name.clone(), m);
            }
            Err(errs) => errs.into_iter().for_each(&mut problem),
        }
    }

    if routers.children.is_empty() {
        if service_count > 1 {
            problem(format!(
                "no router label and {service_count} services: no router is made (name the service of each router)"
            ));
        } else {
            routers.children.push(Node {
                name: name.clone(),
                ..Node::default()
            });
        }
    }
    let model = Model {
        name: &name,
        container_name: &c.name,
        labels: &c.labels,
    };
    for mut node in routers.children.drain(..) {
        let what = format!("router {}", node.name);
        if is_broken("routers", &node.name) {
            problem(format!("{what}: left out because of its malformed label"));
            continue;
        }
        if node.children.is_empty() && node.key.is_some() {
            problem(format!(
                "label {}: {what} needs sub-keys (rule, service, ...); ignored",
                node.keys().join(", ")
            ));
            continue;
        }
        if node.leaf("rule").is_none() {
            match s.default_rule.render(&model) {
                Ok(rule) if !rule.trim().is_empty() => node.set(&["rule"], &rule),
                Ok(_) => {
                    problem(format!(
                        "{what}: no rule label and the default rule is empty"
                    ));
                    continue;
                }
                Err(e) => {
                    problem(format!("{what}: {e}"));
                    continue;
                }
            }
        }
        if node.leaf("service").is_none() {
            match &only_service {
                Some(svc) => node.set(&["service"], svc),
                None => {
                    problem(format!(
                        "{what}: no service label and the container defines {service_count} services"
                    ));
                    continue;
                }
            }
        }
        match labels::deserialize::<Router>(&node, &what) {
            Ok(r) => {
                d.http.routers.insert(node.name.clone(), r);
            }
            Err(errs) => errs.into_iter().for_each(&mut problem),
        }
    }
    Some(d)
}

/// Why a service or middleware node cannot be read (`None`: it can): a malformed label of its
/// own, or no sub-keys.
fn unusable(what: &str, node: &Node, broken: bool) -> Option<String> {
    if broken {
        return Some(format!("{what}: left out because of its malformed label"));
    }
    node.children.is_empty().then(|| {
        format!(
            "label {}: {what} needs sub-keys; ignored",
            node.keys().join(", ")
        )
    })
}

/// This container's server in a load balancer.
fn server(
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
fn address(
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
fn network_missing(c: &Container, network: &str) -> bool {
    let shared = c.network_mode == "host" || c.network_mode.starts_with("container:");
    !shared && on_network(c, network).is_none()
}
