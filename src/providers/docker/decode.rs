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

use super::address::{ServerLabels, address, network_missing, server};
use super::labels::{self, Node, label_tree};
use super::{COMPOSE_PROJECT, COMPOSE_SERVICE, Container, Settings};
use crate::dynamic::Problem;
use crate::dynamic::schema::{Http, Router, Service};
use crate::rule::template::{Model, normalize};
use crate::runtime::middlewares::MiddlewareConfig;

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

/// The part of the configuration `c` contributes, or `None` when it is not routed at all
/// (disabled, filtered out by constraints, not running, not healthy).
pub(super) fn decode(
    c: &Container,
    all: &BTreeMap<String, Container>,
    s: &Settings,
) -> Option<Decoded> {
    let origin = format!("{}@{}", c.name, s.namespace);
    let mut x = Decoder {
        c,
        s,
        source: format!("container {origin}"),
        d: Decoded {
            key: format!("{}-{}", service_name(c), c.id),
            origin,
            ..Decoded::default()
        },
        broken: Vec::new(),
    };
    let (mut tree, bad) = label_tree(c);
    let healthy = match x.admit(&mut tree) {
        Admission::Skip => return None,
        Admission::Refused => return Some(x.d),
        Admission::Routed { healthy } => healthy,
    };
    if !x.sort_bad_labels(bad) {
        return Some(x.d);
    }
    let docker = x.provider_labels(&mut tree);
    let Some(mut parts) = x.http_parts(tree) else {
        return Some(x.d);
    };
    let name = service_name(c);
    let network = docker.network.as_deref().or(s.network.as_deref());
    if let Some(net) = network
        && network_missing(c, net)
    {
        x.problem(format!(
            "network `{net}` is not one of the container's networks ({}); using another",
            c.networks.keys().cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    let address = address(c, all, network, s, 0);
    let service_count = parts.services.children.len().max(1);
    let Ok(only_service) = x.services(&mut parts.services, &name, healthy, &address) else {
        // Its server address cannot be made: Traefik leaves the whole container out.
        x.d.http = Http::default();
        return Some(x.d);
    };
    x.middlewares(&mut parts.middlewares);
    x.routers(&mut parts.routers, &name, only_service, service_count);
    Some(x.d)
}

/// Whether a container is routed at all.
enum Admission {
    /// Not routed, nothing to say (disabled, filtered, not running, unhealthy).
    Skip,
    /// Not routed, with the reason in the problems.
    Refused,
    Routed {
        healthy: bool,
    },
}

/// A container's labels split by kind, after the provider's own labels were taken.
struct HttpParts {
    routers: Node,
    services: Node,
    middlewares: Node,
}

/// One container being decoded: what it contributes so far and its malformed objects.
struct Decoder<'a> {
    c: &'a Container,
    s: &'a Settings,
    /// `container name@namespace`, for problems.
    source: String,
    d: Decoded,
    /// `(kind, name)` of the objects with a malformed label (left out whole).
    broken: Vec<(String, String)>,
}

impl Decoder<'_> {
    fn problem(&mut self, msg: String) {
        (self.d.problems).push(Problem::new(self.source.clone(), msg));
    }

    fn problems(&mut self, msgs: Vec<String>) {
        for m in msgs {
            self.problem(m);
        }
    }

    fn is_broken(&self, kind: &str, name: &str) -> bool {
        (self.broken.iter()).any(|(k, n)| k == kind && n.eq_ignore_ascii_case(name))
    }

    /// `traefik.enable` against `exposedByDefault`, the constraints, running and health.
    fn admit(&mut self, tree: &mut Node) -> Admission {
        let enable = match tree.take("enable") {
            None => self.s.exposed_by_default,
            Some(n) => match n.value.as_deref().and_then(go_bool) {
                Some(b) if n.children.is_empty() => b,
                _ => {
                    // A container that meant to say "off" must not be exposed by a typo.
                    let key = n.key.as_deref().unwrap_or("traefik.enable");
                    self.problem(format!(
                        "label {key}: not a boolean; the container is not exposed"
                    ));
                    return Admission::Refused;
                }
            },
        };
        let (c, s) = (self.c, self.s);
        let filtered = (s.constraints.as_ref()).is_some_and(|k| !k.matches(&c.labels));
        if !enable || filtered || !c.running {
            return Admission::Skip;
        }
        let healthy = c.health.as_deref().is_none_or(|h| h == "healthy");
        if !healthy && !s.allow_empty_services {
            return Admission::Skip;
        }
        Admission::Routed { healthy }
    }

    /// Report every malformed label and note the object it belongs to (that object is left
    /// out: a router without the middleware it names would serve unprotected). False when a
    /// label cannot be tied to one object: the whole container is left out.
    fn sort_bad_labels(&mut self, bad: Vec<labels::BadLabel>) -> bool {
        let mut container_broken = false;
        for b in bad {
            self.problem(format!("label {}: {}", b.key, b.why));
            let p: Vec<String> = b.prefix.iter().map(|s| s.to_ascii_lowercase()).collect();
            match p.as_slice() {
                [http, kind, name, ..]
                    if http == "http"
                        && ["routers", "services", "middlewares"].contains(&kind.as_str()) =>
                {
                    self.broken.push((kind.clone(), name.clone()));
                }
                [root, ..]
                    if !(["enable", "docker", "http"].contains(&root.as_str())
                        || self.s.swarm && root == "swarm") => {}
                _ => container_broken = true,
            }
        }
        if container_broken {
            self.problem("a malformed label cannot be tied to one router, service or middleware; the container is not routed".into());
        }
        !container_broken
    }

    /// Provider-specific labels: `traefik.docker.*`, and on a swarm also `traefik.swarm.*`
    /// (Traefik 3's spelling; swarm services written for Traefik 2 use `docker`).
    fn provider_labels(&mut self, tree: &mut Node) -> DockerLabels {
        let mut docker = DockerLabels::default();
        for section in ["docker", "swarm"] {
            let Some(n) = tree.take(section) else {
                continue;
            };
            if section == "swarm" && !self.s.swarm {
                self.problem(format!(
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
                Err(errs) => self.problems(errs),
            }
        }
        if docker.allow_non_running == Some(true) {
            self.problem("label traefik.docker.allownonrunning: not supported; only running containers are routed".into());
        }
        if docker.lb_swarm.is_some() && !self.s.swarm {
            self.problem(
                "label traefik.docker.lbswarm: only meaningful for Swarm services; ignored".into(),
            );
        }
        docker
    }

    /// The routers, services and middlewares labels, every other label reported. `None`: the
    /// container has TCP/UDP labels only (nothing HTTP to route).
    fn http_parts(&mut self, mut tree: Node) -> Option<HttpParts> {
        let mut tcp_udp = false;
        for (kind, what) in [
            ("tcp", "TCP routing"),
            ("udp", "UDP routing"),
            ("tls", "TLS options"),
        ] {
            if let Some(n) = tree.take(kind) {
                tcp_udp |= kind != "tls";
                self.problem(format!(
                    "{what} from labels is not supported yet; ignored: {}",
                    n.keys().join(", ")
                ));
            }
        }
        let mut http = tree.take("http").unwrap_or_default();
        for n in tree.children.drain(..) {
            let keys = n.keys().join(", ");
            self.problem(format!("label {keys}: unknown label; ignored"));
        }
        let mut parts = HttpParts {
            routers: http.take("routers").unwrap_or_default(),
            services: http.take("services").unwrap_or_default(),
            middlewares: http.take("middlewares").unwrap_or_default(),
        };
        for n in http.children.drain(..) {
            let what = if n.name.eq_ignore_ascii_case("serverstransports") {
                "servers transports are not supported yet"
            } else {
                "unknown label"
            };
            self.problem(format!("label {}: {what}; ignored", n.keys().join(", ")));
        }
        // Objects whose only labels are malformed still exist (and are then left out): a
        // broken router label must not turn into a default router.
        for (kind, name) in &self.broken {
            let list = match kind.as_str() {
                "routers" => &mut parts.routers,
                "services" => &mut parts.services,
                _ => &mut parts.middlewares,
            };
            if list.child(name).is_none() {
                list.children.push(Node {
                    name: name.clone(),
                    ..Node::default()
                });
            }
        }
        let nothing_http = parts.routers.children.is_empty()
            && parts.services.children.is_empty()
            && parts.middlewares.children.is_empty();
        (!(tcp_udp && nothing_http)).then_some(parts)
    }

    /// Every service (one named after the container when no label names one), each with this
    /// container's server when healthy. Returns the name of the only service, if there is one;
    /// `Err` when the container must be left out whole (its server address cannot be made; the
    /// problem is recorded).
    fn services(
        &mut self,
        services: &mut Node,
        name: &str,
        healthy: bool,
        address: &Result<String, String>,
    ) -> Result<Option<String>, ()> {
        if services.children.is_empty() {
            services.children.push(Node {
                name: name.to_string(),
                children: vec![Node {
                    name: "loadBalancer".into(),
                    value: Some("true".into()),
                    ..Node::default()
                }],
                ..Node::default()
            });
        }
        let only = (services.children.len() == 1).then(|| services.children[0].name.clone());
        for node in services.children.drain(..) {
            if !self.service(node, healthy, address) {
                return Err(());
            }
        }
        Ok(only)
    }

    /// One service node; false when the container must be left out whole.
    fn service(&mut self, mut node: Node, healthy: bool, address: &Result<String, String>) -> bool {
        let what = format!("service {}", node.name);
        let broken = self.is_broken("services", &node.name);
        if let Some(why) = unusable(&what, &node, broken) {
            self.problem(why);
            return true;
        }
        let mut server_node = None;
        if let Some(lb) =
            (node.children.iter_mut()).find(|n| n.name.eq_ignore_ascii_case("loadbalancer"))
        {
            server_node = lb.take("server");
            if let Some(servers) = lb.take("servers") {
                self.problem(format!(
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
                    self.problems(errs);
                    return true;
                }
            },
            None => ServerLabels::default(),
        };
        let mut service = match labels::deserialize::<Service>(&node, &what) {
            Ok(v) => v,
            Err(errs) => {
                self.problems(errs);
                return true;
            }
        };
        let Service::LoadBalancer(lb) = &mut service else {
            if server_node.is_some() {
                self.problem(format!(
                    "{what}: server labels need a loadBalancer service; ignored"
                ));
            }
            self.d.http.services.insert(node.name.clone(), service);
            return true;
        };
        if healthy {
            match server(self.c, &server_labels, address) {
                Ok(srv) => lb.servers.push(srv),
                Err(why) => {
                    // Traefik leaves the whole container out in this case.
                    self.problem(format!("{what}: {why}; the container is not routed"));
                    return false;
                }
            }
        }
        self.d.http.services.insert(node.name.clone(), service);
        true
    }

    fn middlewares(&mut self, middlewares: &mut Node) {
        for node in middlewares.children.drain(..) {
            let what = format!("middleware {}", node.name);
            let broken = self.is_broken("middlewares", &node.name);
            if let Some(why) = unusable(&what, &node, broken) {
                self.problem(why);
                continue;
            }
            match labels::deserialize::<MiddlewareConfig>(&node, &what) {
                Ok(m) => {
                    self.d.http.middlewares.insert(node.name.clone(), m);
                }
                Err(errs) => self.problems(errs),
            }
        }
    }

    /// Every router (one named after the container when no label names one), with the
    /// default rule and the only service filled in where missing.
    fn routers(
        &mut self,
        routers: &mut Node,
        name: &str,
        only_service: Option<String>,
        service_count: usize,
    ) {
        if routers.children.is_empty() {
            if service_count > 1 {
                self.problem(format!(
                    "no router label and {service_count} services: no router is made (name the service of each router)"
                ));
            } else {
                routers.children.push(Node {
                    name: name.to_string(),
                    ..Node::default()
                });
            }
        }
        for node in routers.children.drain(..) {
            if let Some((router_name, r)) = self.router(node, name, &only_service, service_count) {
                self.d.http.routers.insert(router_name, r);
            }
        }
    }

    fn router(
        &mut self,
        mut node: Node,
        name: &str,
        only_service: &Option<String>,
        service_count: usize,
    ) -> Option<(String, Router)> {
        let what = format!("router {}", node.name);
        if self.is_broken("routers", &node.name) {
            self.problem(format!("{what}: left out because of its malformed label"));
            return None;
        }
        if node.children.is_empty() && node.key.is_some() {
            self.problem(format!(
                "label {}: {what} needs sub-keys (rule, service, ...); ignored",
                node.keys().join(", ")
            ));
            return None;
        }
        if node.leaf("rule").is_none() {
            let model = Model {
                name,
                container_name: &self.c.name,
                labels: &self.c.labels,
            };
            match self.s.default_rule.render(&model) {
                Ok(rule) if !rule.trim().is_empty() => node.set(&["rule"], &rule),
                Ok(_) => {
                    self.problem(format!(
                        "{what}: no rule label and the default rule is empty"
                    ));
                    return None;
                }
                Err(e) => {
                    self.problem(format!("{what}: {e}"));
                    return None;
                }
            }
        }
        if node.leaf("service").is_none() {
            match only_service {
                Some(svc) => node.set(&["service"], svc),
                None => {
                    self.problem(format!(
                        "{what}: no service label and the container defines {service_count} services"
                    ));
                    return None;
                }
            }
        }
        match labels::deserialize::<Router>(&node, &what) {
            Ok(r) => Some((node.name.clone(), r)),
            Err(errs) => {
                self.problems(errs);
                None
            }
        }
    }
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
