//! Swarm mode: the services of a swarm manager, with their `deploy.labels`, turned into the
//! same [`Container`] records the Docker provider builds routes from, so the label grammar,
//! defaults and problems are one and the same (`decode`, `build`).
//!
//! A service stands for one container per running task (a server per replica, reached on the
//! task's address), or, with `traefik.swarm.lbswarm=true` (also `traefik.docker.lbswarm`, the
//! Traefik 2 spelling), for a single container reached on the service's virtual IP, the swarm
//! load balancing between replicas. Addresses on the routing-mesh `ingress` network are never
//! used: nothing but the mesh itself can reach them.
//!
//! Only `GET /info`, `/networks`, `/services`, `/tasks` are read. [`containers`] is pure and
//! tested from fixtures; the polling and event handling live in `watch`.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use serde::de::IgnoredAny;

use super::Container;
use super::client::{ApiError, query_value};
use super::decode::go_bool;
use super::engine::{Engine, EventMessage};

/// Label on a task's container naming its service (set by the engine).
const TASK_SERVICE_LABEL: &str = "com.docker.swarm.service.id";

#[derive(Deserialize, Default)]
#[serde(default)]
struct Info {
    #[serde(rename = "Swarm")]
    swarm: SwarmInfo,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SwarmInfo {
    #[serde(rename = "LocalNodeState")]
    local_node_state: String,
    #[serde(rename = "ControlAvailable")]
    control_available: bool,
}

/// `GET /networks` entry.
#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub(super) struct Network {
    #[serde(rename = "Id")]
    pub id: String,
    #[serde(rename = "Name")]
    pub name: String,
    /// The routing mesh's network.
    #[serde(rename = "Ingress")]
    pub ingress: bool,
}

/// `GET /services` entry.
#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub(super) struct Service {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Spec")]
    pub spec: ServiceSpec,
    #[serde(rename = "Endpoint")]
    pub endpoint: ServiceEndpoint,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub(super) struct ServiceSpec {
    #[serde(rename = "Name")]
    pub name: String,
    /// `deploy.labels` of a compose file.
    #[serde(rename = "Labels")]
    pub labels: BTreeMap<String, String>,
    #[serde(rename = "Mode")]
    pub mode: ServiceMode,
    #[serde(rename = "EndpointSpec")]
    pub endpoint_spec: Option<EndpointSpec>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub(super) struct ServiceMode {
    #[serde(rename = "Global")]
    pub global: Option<IgnoredAny>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub(super) struct EndpointSpec {
    /// `vip` (default) or `dnsrr`.
    #[serde(rename = "Mode")]
    pub mode: String,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub(super) struct ServiceEndpoint {
    #[serde(rename = "VirtualIPs")]
    pub virtual_ips: Vec<VirtualIp>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub(super) struct VirtualIp {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    /// CIDR form: `10.0.1.5/24`.
    #[serde(rename = "Addr")]
    pub addr: String,
}

/// `GET /tasks` entry.
#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub(super) struct Task {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "ServiceID")]
    pub service_id: String,
    #[serde(rename = "Slot")]
    pub slot: u64,
    #[serde(rename = "Status")]
    pub status: TaskStatus,
    #[serde(rename = "NetworksAttachments")]
    pub networks_attachments: Vec<Attachment>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub(super) struct TaskStatus {
    /// `running`, or a step on the way (`pending`, `starting`...), or an end.
    #[serde(rename = "State")]
    pub state: String,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub(super) struct Attachment {
    #[serde(rename = "Network")]
    pub network: AttachedNetwork,
    /// CIDR form.
    #[serde(rename = "Addresses")]
    pub addresses: Vec<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub(super) struct AttachedNetwork {
    #[serde(rename = "ID")]
    pub id: String,
}

/// What one list of a swarm gives.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Listed {
    pub containers: BTreeMap<String, Container>,
    /// Some task meant to run is still on its way (worth looking again soon).
    pub starting: bool,
}

/// Is the engine a swarm manager (the only kind that can list services)?
pub(super) async fn check_manager(engine: &Engine) -> Result<(), String> {
    let info: Info = engine
        .client()
        .get("/info")
        .await
        .map_err(|e| e.to_string())?;
    let s = info.swarm;
    if s.local_node_state != "active" {
        return Err(format!(
            "the engine is not in a swarm (state `{}`); run `docker swarm init` or point `endpoint` at a manager",
            s.local_node_state
        ));
    }
    if !s.control_available {
        return Err("the engine is a swarm worker; point `endpoint` at a manager".into());
    }
    Ok(())
}

/// Read the networks, services and running tasks of the swarm.
pub(super) async fn list(engine: &Engine) -> Result<Listed, ApiError> {
    let client = engine.client();
    let networks: Vec<Network> = client.get("/networks").await?;
    let services: Vec<Service> = client.get("/services").await?;
    let filters = serde_json::json!({ "desired-state": ["running"] });
    let tasks: Vec<Task> = client
        .get(&format!(
            "/tasks?filters={}",
            query_value(&filters.to_string())
        ))
        .await?;
    Ok(containers(&services, &tasks, &networks))
}

/// Does this event change what a list would show?
pub(super) fn relevant(m: &EventMessage) -> bool {
    match m.typ.as_str() {
        "service" | "node" => true,
        "container" => m.actor.attributes.contains_key(TASK_SERVICE_LABEL),
        _ => false,
    }
}

/// Traefik's `lbswarm` label, either spelling, either prefix, any case.
fn lb_swarm(labels: &BTreeMap<String, String>) -> bool {
    labels.iter().any(|(k, v)| {
        let k = k.to_ascii_lowercase();
        ["traefik", "boma"].iter().any(|p| {
            ["swarm", "docker"]
                .iter()
                .any(|m| k == format!("{p}.{m}.lbswarm"))
        }) && go_bool(v) == Some(true)
    })
}

/// `10.0.1.5/24` → `10.0.1.5`.
fn strip_mask(cidr: &str) -> Option<String> {
    let ip = cidr.split('/').next()?.trim();
    ip.parse::<std::net::IpAddr>().ok().map(|a| a.to_string())
}

/// Services and their tasks → the containers they stand for. Pure.
pub(super) fn containers(services: &[Service], tasks: &[Task], networks: &[Network]) -> Listed {
    let names: BTreeMap<&str, &str> = (networks.iter())
        .filter(|n| !n.ingress)
        .map(|n| (n.id.as_str(), n.name.as_str()))
        .collect();
    let mut out = Listed::default();
    let mut seen = BTreeSet::new();
    for svc in services {
        let name = &svc.spec.name;
        if name.is_empty() || !seen.insert(svc.id.as_str()) {
            continue;
        }
        let record = |id: &str, container_name: String, networks| Container {
            id: id.to_string(),
            name: container_name,
            service: Some(name.clone()),
            labels: svc.spec.labels.clone(),
            running: true,
            health: None,
            network_mode: "default".to_string(),
            ports: Vec::new(),
            networks,
        };
        // lbswarm needs a virtual IP; a `dnsrr` service has none, so its tasks are used, as
        // Traefik does.
        let dnsrr = (svc.spec.endpoint_spec.as_ref()).is_some_and(|e| e.mode == "dnsrr");
        if lb_swarm(&svc.spec.labels) && !dnsrr {
            let nets = (svc.endpoint.virtual_ips.iter())
                .filter_map(|vip| {
                    let net = names.get(vip.network_id.as_str())?;
                    Some((net.to_string(), strip_mask(&vip.addr)?))
                })
                .collect();
            out.containers
                .insert(svc.id.clone(), record(&svc.id, name.clone(), nets));
            continue;
        }
        let before = out.containers.len();
        for task in tasks.iter().filter(|t| t.service_id == svc.id) {
            match task.status.state.as_str() {
                "running" => {}
                "new" | "allocated" | "pending" | "assigned" | "accepted" | "preparing"
                | "ready" | "starting" => {
                    out.starting = true;
                    continue;
                }
                _ => continue,
            }
            let task_name = if svc.spec.mode.global.is_some() {
                format!("{name}.{}", task.id)
            } else {
                format!("{name}.{}", task.slot)
            };
            let nets = (task.networks_attachments.iter())
                .filter_map(|a| {
                    let net = names.get(a.network.id.as_str())?;
                    let ip = strip_mask(a.addresses.first()?)?;
                    Some((net.to_string(), ip))
                })
                .collect();
            out.containers
                .insert(task.id.clone(), record(&task.id, task_name, nets));
        }
        if out.containers.len() == before {
            // No running task: the service still exists for `allowEmptyServices` (routers kept,
            // a service with no server answering 503); otherwise it is left out like an
            // unhealthy container.
            let mut none = record(&svc.id, name.clone(), BTreeMap::new());
            none.health = Some("starting".to_string());
            out.containers.insert(svc.id.clone(), none);
        }
    }
    out
}
