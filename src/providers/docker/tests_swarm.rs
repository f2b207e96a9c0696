//! Swarm services and tasks (API JSON as a 1.41 engine sends it, trimmed) → containers.

use super::swarm::{Network, Service, Task, containers};

const NETWORKS: &str = r#"[
  {"Name": "ingress", "Id": "ing0", "Scope": "swarm", "Driver": "overlay", "Ingress": true},
  {"Name": "village", "Id": "net1", "Scope": "swarm", "Driver": "overlay", "Ingress": false},
  {"Name": "bridge", "Id": "br0", "Scope": "local", "Driver": "bridge"}
]"#;

const SERVICES: &str = r#"[
  {"ID": "svcweb", "Spec": {"Name": "stack_web",
     "Labels": {"traefik.http.routers.web.rule": "Host(`web.lan`)",
                "traefik.http.services.web.loadbalancer.server.port": "8080"},
     "Mode": {"Replicated": {"Replicas": 3}}},
   "Endpoint": {"VirtualIPs": [{"NetworkID": "ing0", "Addr": "10.0.0.9/24"},
                               {"NetworkID": "net1", "Addr": "10.0.1.2/24"}]}},
  {"ID": "svcvip", "Spec": {"Name": "stack_api",
     "Labels": {"Traefik.Swarm.LBSwarm": "true"},
     "Mode": {"Replicated": {"Replicas": 2}}, "EndpointSpec": {"Mode": "vip"}},
   "Endpoint": {"VirtualIPs": [{"NetworkID": "ing0", "Addr": "10.0.0.7/24"},
                               {"NetworkID": "net1", "Addr": "10.0.1.3/24"}]}},
  {"ID": "svcglobal", "Spec": {"Name": "agent", "Labels": {},
     "Mode": {"Global": {}}}, "Endpoint": {}},
  {"ID": "svcdnsrr", "Spec": {"Name": "dir", "Labels": {"traefik.docker.lbswarm": "true"},
     "EndpointSpec": {"Mode": "dnsrr"}}},
  {"ID": "svcidle", "Spec": {"Name": "idle", "Labels": {}}}
]"#;

const TASKS: &str = r#"[
  {"ID": "t1", "ServiceID": "svcweb", "Slot": 1, "Status": {"State": "running"},
   "DesiredState": "running",
   "NetworksAttachments": [
     {"Network": {"ID": "ing0", "Spec": {"Name": "ingress"}}, "Addresses": ["10.0.0.10/24"]},
     {"Network": {"ID": "net1", "Spec": {"Name": "village"}}, "Addresses": ["10.0.1.10/24"]}]},
  {"ID": "t2", "ServiceID": "svcweb", "Slot": 2, "Status": {"State": "running"},
   "NetworksAttachments": [
     {"Network": {"ID": "net1"}, "Addresses": ["10.0.1.11/24"]}]},
  {"ID": "t3", "ServiceID": "svcweb", "Slot": 3, "Status": {"State": "preparing"},
   "NetworksAttachments": [{"Network": {"ID": "net1"}, "Addresses": ["10.0.1.12/24"]}]},
  {"ID": "t4", "ServiceID": "svcvip", "Slot": 1, "Status": {"State": "running"}},
  {"ID": "t5", "ServiceID": "svcglobal", "NodeID": "n1", "Status": {"State": "running"},
   "NetworksAttachments": [{"Network": {"ID": "net1"}, "Addresses": ["10.0.1.20/24"]}]},
  {"ID": "t6", "ServiceID": "svcweb", "Slot": 4, "Status": {"State": "failed"}},
  {"ID": "t7", "ServiceID": "svcdnsrr", "Slot": 1, "Status": {"State": "running"},
   "NetworksAttachments": [{"Network": {"ID": "net1"}, "Addresses": ["10.0.1.30/24"]}]}
]"#;

fn listed() -> super::swarm::Listed {
    let networks: Vec<Network> = serde_json::from_str(NETWORKS).unwrap();
    let services: Vec<Service> = serde_json::from_str(SERVICES).unwrap();
    let tasks: Vec<Task> = serde_json::from_str(TASKS).unwrap();
    containers(&services, &tasks, &networks)
}

#[test]
fn one_container_per_running_task_off_the_ingress_network() {
    let l = listed();
    let t1 = &l.containers["t1"];
    assert_eq!(t1.name, "stack_web.1");
    assert_eq!(t1.service.as_deref(), Some("stack_web"));
    assert!(t1.running);
    assert_eq!(
        t1.networks.iter().collect::<Vec<_>>(),
        [(&"village".to_string(), &"10.0.1.10".to_string())],
        "ingress addresses are never used"
    );
    assert_eq!(l.containers["t2"].networks["village"], "10.0.1.11");
    assert!(!l.containers.contains_key("t3"), "not running yet");
    assert!(!l.containers.contains_key("t6"), "failed");
    assert!(l.starting, "t3 is on its way: look again soon");
}

#[test]
fn lbswarm_is_one_container_on_the_virtual_ip() {
    let l = listed();
    let vip = &l.containers["svcvip"];
    assert_eq!(vip.name, "stack_api");
    assert_eq!(
        vip.networks.iter().collect::<Vec<_>>(),
        [(&"village".to_string(), &"10.0.1.3".to_string())]
    );
    assert!(
        !l.containers.contains_key("t4"),
        "tasks of an lbswarm service"
    );
}

#[test]
fn lbswarm_without_a_virtual_ip_uses_the_tasks() {
    let l = listed();
    assert_eq!(l.containers["t7"].networks["village"], "10.0.1.30");
    assert!(!l.containers.contains_key("svcdnsrr"));
}

#[test]
fn a_service_without_running_tasks_is_kept_only_for_allow_empty_services() {
    let l = listed();
    let idle = &l.containers["svcidle"];
    assert_eq!(idle.health.as_deref(), Some("starting"));
    assert!(idle.networks.is_empty());
    let mut s = super::Settings::new("swarm");
    s.swarm = true;
    let only_idle: std::collections::BTreeMap<_, _> =
        [("svcidle".to_string(), idle.clone())].into();
    assert!(super::build(&only_idle, &s).config.http.is_none());
    s.allow_empty_services = true;
    let http = super::build(&only_idle, &s)
        .config
        .http
        .clone()
        .expect("kept");
    let crate::dynamic::schema::Service::LoadBalancer(lb) = &http.services["idle"] else {
        panic!("a load balancer");
    };
    assert!(lb.servers.is_empty());
    assert_eq!(http.routers["idle"].rule, "Host(`idle`)");
}

#[test]
fn global_tasks_are_named_by_task_id() {
    let l = listed();
    assert_eq!(l.containers["t5"].name, "agent.t5");
}

#[test]
fn swarm_containers_build_routes_named_after_the_service() {
    let l = listed();
    let mut s = super::Settings::new("swarm");
    s.swarm = true;
    let f = super::build(&l.containers, &s);
    let http = f.config.http.as_ref().expect("http");
    assert_eq!(http.routers["web"].rule, "Host(`web.lan`)");
    let crate::dynamic::schema::Service::LoadBalancer(lb) = &http.services["web"] else {
        panic!("web is a load balancer");
    };
    let mut urls: Vec<&str> = lb.servers.iter().map(|s| s.url.as_str()).collect();
    urls.sort();
    assert_eq!(urls, ["http://10.0.1.10:8080", "http://10.0.1.11:8080"]);
    // No port label and no exposed port (a swarm service has none): left out, as Traefik does.
    assert!(!http.services.contains_key("stack-api"));
    assert!(
        f.problems.iter().any(|p| p
            .to_string()
            .contains("no exposed port and no server.port label")),
        "{:?}",
        f.problems
    );
    assert!(
        !f.problems
            .iter()
            .any(|p| p.to_string().to_ascii_lowercase().contains("lbswarm")),
        "lbswarm is a swarm label: {:?}",
        f.problems
    );
}
