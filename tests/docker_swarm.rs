//! The swarm provider against a real single-node swarm (`make deps` runs `docker swarm init`):
//! services with deploy labels become routes, one server per running task, or the service's
//! virtual IP with `lbswarm`; scaling, label updates and removal follow.
//!
//! Task addresses live on an overlay network the host cannot reach, so boma runs the way an
//! operator runs it on a swarm: as a container on that network, with the engine's socket
//! mounted. Its image is `FROM scratch` with the very binary under test (and the shared
//! libraries `ldd` names for it); its ports are published on 127.0.0.1. Requests are real HTTP
//! through boma to the project's `whoami` in the tasks. Every service, container, network and
//! image is removed by guards, also when the test fails.

mod docker_support;
mod support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use docker_support::{docker, docker_raw, images, require_engine, unique};
use support::{Client, eventually};

/// Panic unless the engine is a swarm manager.
fn require_swarm() {
    require_engine();
    let state = docker(&[
        "info",
        "--format",
        "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}",
    ]);
    assert_eq!(
        state, "active true",
        "the Docker engine is not a swarm manager (`{state}`); run `make deps` (it runs `docker swarm init`)"
    );
}

/// An attachable overlay network, removed when dropped.
struct Overlay {
    name: String,
}

impl Overlay {
    fn create() -> Overlay {
        let name = unique("ov");
        docker(&["network", "create", "-d", "overlay", "--attachable", &name]);
        Overlay { name }
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        // Tasks leave the network shortly after their service is removed.
        for _ in 0..20 {
            if docker_raw(&["network", "rm", &self.name]).status.success() {
                return;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

/// A swarm service, removed when dropped.
struct Service {
    name: String,
    _images: std::sync::Arc<docker_support::Images>,
}

impl Service {
    /// `docker service create` of the whoami image on `net`, with these deploy labels; each
    /// task's host name (what whoami answers) is `<service>.<slot>`.
    fn create(net: &str, replicas: u32, labels: &[(&str, &str)]) -> Service {
        let image = images();
        let name = unique("svc");
        let replicas = replicas.to_string();
        let mut args = vec![
            "service".to_string(),
            "create".into(),
            "-d".into(),
            "-q".into(),
            "--name".into(),
            name.clone(),
            "--network".into(),
            net.into(),
            "--replicas".into(),
            replicas,
            "--hostname".into(),
            "{{.Service.Name}}.{{.Task.Slot}}".into(),
            "--no-resolve-image".into(),
        ];
        for (k, v) in labels {
            args.push("--label".into());
            args.push(format!("{k}={v}"));
        }
        args.push(image.plain.clone());
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        docker(&refs);
        Service {
            name,
            _images: image,
        }
    }

    fn update(&self, args: &[&str]) {
        let mut all = vec!["service", "update", "-d", "-q"];
        all.extend_from_slice(args);
        all.push(&self.name);
        docker(&all);
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = docker_raw(&["service", "rm", &self.name]);
    }
}

/// boma in a container on the overlay network, watching the swarm through the mounted socket.
struct SwarmBoma {
    container: String,
    image: String,
    _config: tempfile::TempDir,
    web: SocketAddr,
    api: SocketAddr,
}

impl SwarmBoma {
    /// boma's image built, configured for the services labelled `boma.test=tag` and run on
    /// `net`, with the host addresses of its published ports.
    fn start(net: &str, tag: &str) -> SwarmBoma {
        let image = SwarmBoma::build_image();
        let config = SwarmBoma::write_config(net, tag);
        let mut boma = SwarmBoma::run(net, image, config);
        boma.web = boma.published("80/tcp");
        boma.api = boma.published("8081/tcp");
        boma
    }

    /// Builds the `FROM scratch` image of the binary under test with the shared libraries `ldd`
    /// names for it, and gives its tag.
    fn build_image() -> String {
        let ctx = tempfile::tempdir().expect("tempdir");
        let bin = Path::new(env!("CARGO_BIN_EXE_boma"));
        std::fs::copy(bin, ctx.path().join("boma")).expect("copy boma");
        let mut dockerfile = String::from("FROM scratch\nCOPY boma /boma\n");
        // The binary under test is a normal (dynamically linked) build: bring its libraries.
        let ldd = std::process::Command::new("ldd")
            .arg(bin)
            .output()
            .expect("run ldd");
        for line in String::from_utf8_lossy(&ldd.stdout).lines() {
            let path = line
                .split_whitespace()
                .find(|w| w.starts_with('/'))
                .map(str::to_string);
            let Some(path) = path else { continue };
            let rel = path.trim_start_matches('/');
            let dst = ctx.path().join("libs").join(rel);
            std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
            std::fs::copy(&path, &dst).unwrap_or_else(|e| panic!("copy {path}: {e}"));
        }
        if ctx.path().join("libs").exists() {
            dockerfile.push_str("COPY libs/ /\n");
        }
        dockerfile.push_str("ENTRYPOINT [\"/boma\"]\n");
        std::fs::write(ctx.path().join("Dockerfile"), dockerfile).unwrap();
        let image = format!("{}:latest", unique("boma"));
        docker(&["build", "-q", "-t", &image, &ctx.path().to_string_lossy()]);
        image
    }

    /// Writes the configuration the container mounts: the swarm provider constrained to this
    /// test's `tag` on `net`, the API on 8081.
    fn write_config(net: &str, tag: &str) -> tempfile::TempDir {
        let config = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            config.path().join("boma.toml"),
            format!(
                r#"
[entryPoints.web]
address = ":80"
[entryPoints.traefik]
address = ":8081"
[api]
insecure = true
[providers.swarm]
constraints = "Label(`boma.test`, `{tag}`)"
network = "{net}"
refreshSeconds = "30s"
[log]
level = "debug"
"#
            ),
        )
        .unwrap();
        config
    }

    /// `docker run` of `image` on `net` with the engine's socket and `config` mounted and its
    /// ports published on 127.0.0.1; the guard exists before the run is checked, so a failed
    /// run still removes the container and the image.
    fn run(net: &str, image: String, config: tempfile::TempDir) -> SwarmBoma {
        let name = unique("boma");
        let mount = format!("{}:/etc/boma:ro", config.path().display());
        let run = docker_raw(&[
            "run",
            "-d",
            "--name",
            &name,
            "--network",
            net,
            "-p",
            "127.0.0.1::80",
            "-p",
            "127.0.0.1::8081",
            "-v",
            "/var/run/docker.sock:/var/run/docker.sock",
            "-v",
            &mount,
            &image,
            "run",
            "--config",
            "/etc/boma/boma.toml",
        ]);
        let boma = SwarmBoma {
            container: name,
            image,
            _config: config,
            web: "127.0.0.1:0".parse().unwrap(),
            api: "127.0.0.1:0".parse().unwrap(),
        };
        assert!(
            run.status.success(),
            "docker run boma: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        boma
    }

    /// The address on 127.0.0.1 where docker published the container's port `p`.
    fn published(&self, p: &str) -> SocketAddr {
        let out = docker(&["port", &self.container, p]);
        let first = out.lines().next().unwrap_or_default().to_string();
        first
            .parse()
            .unwrap_or_else(|_| panic!("docker port {p}: `{out}`"))
    }

    fn logs(&self) -> String {
        let out = docker_raw(&["logs", &self.container]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// The backends (whoami names) that answer `host` in `n` requests, once `want` of them
    /// have answered (or the limit passed).
    async fn backends(&self, client: &Client, host: &str, want: usize) -> BTreeSet<String> {
        let seen = eventually(Duration::from_secs(30), || async {
            let mut seen = BTreeSet::new();
            for _ in 0..(want * 4) {
                let r = client.get(self.web, host, "/").await;
                if r.status == 200 {
                    seen.insert(r.backend().to_string());
                }
            }
            (seen.len() == want).then_some(seen)
        })
        .await;
        seen.unwrap_or_else(|| {
            panic!(
                "{host}: {want} backends never answered; boma log:\n{}",
                self.logs()
            )
        })
    }

    async fn wait_status(&self, client: &Client, host: &str, status: u16) {
        let ok = eventually(Duration::from_secs(30), || async {
            (client.get(self.web, host, "/").await.status == status).then_some(())
        })
        .await;
        if ok.is_none() {
            panic!("{host} never answered {status}; boma log:\n{}", self.logs());
        }
    }
}

impl Drop for SwarmBoma {
    fn drop(&mut self) {
        let _ = docker_raw(&["rm", "-f", &self.container]);
        let _ = docker_raw(&["rmi", "-f", &self.image]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swarm_services_tasks_vip_scaling_updates_and_removal() {
    require_swarm();
    let tag = unique("swarm");
    let net = Overlay::create();
    let client = Client::new();
    let (web, vip, _other) = two_services_for_this_boma_and_one_not(&net.name, &tag);
    let boma = SwarmBoma::start(&net.name, &tag);

    every_task_is_a_server(&boma, &client, &web).await;
    lbswarm_routes_to_the_virtual_ip(&boma, &client, &vip).await;
    // The service with another test's label is not routed.
    boma.wait_status(&client, "other.swarm.test", 404).await;
    scaling_up_adds_a_server_per_new_task(&boma, &client, &web).await;
    a_label_update_moves_the_route(&boma, &client, &web).await;
    a_removed_service_is_no_longer_routed(&boma, &client, vip).await;
}

/// Creates `web` (two tasks, explicit rule and port) and `vip` (two tasks, default rule,
/// `lbswarm`) labelled for this boma, and one labelled for someone else.
fn two_services_for_this_boma_and_one_not(net: &str, tag: &str) -> (Service, Service, Service) {
    // One server per task, explicit rule and port.
    let web = Service::create(
        net,
        2,
        &[
            ("boma.test", tag),
            ("traefik.http.routers.web.rule", "Host(`web.swarm.test`)"),
            ("traefik.http.services.web.loadbalancer.server.port", "80"),
        ],
    );
    // The default rule names the service; lbswarm sends to its virtual IP.
    let vip = Service::create(
        net,
        2,
        &[
            ("boma.test", tag),
            ("traefik.swarm.lbswarm", "true"),
            ("traefik.http.services.vip.loadbalancer.server.port", "80"),
        ],
    );
    // Not for this boma: another test's label.
    let other = Service::create(
        net,
        1,
        &[
            ("boma.test", "someone-else"),
            ("traefik.http.routers.o.rule", "Host(`other.swarm.test`)"),
            ("traefik.http.services.o.loadbalancer.server.port", "80"),
        ],
    );
    (web, vip, other)
}

/// `web.swarm.test` is answered by each of the service's two tasks: one server per task.
async fn every_task_is_a_server(boma: &SwarmBoma, client: &Client, web: &Service) {
    let seen = boma.backends(client, "web.swarm.test", 2).await;
    let expected: BTreeSet<String> = (1..=2).map(|i| format!("{}.{i}", web.name)).collect();
    assert_eq!(seen, expected, "one server per task");
}

/// With `lbswarm`, the service's one server is its virtual IP and its router has the default
/// rule naming the service (checked through the API).
async fn lbswarm_routes_to_the_virtual_ip(boma: &SwarmBoma, client: &Client, vip: &Service) {
    // The service's VIP: the swarm balances, boma has one server, the VIP. (This machine's
    // kernel has no IPVS, so the VIP itself cannot carry traffic here: the route is checked
    // through the API instead of through a request.)
    let vip_addr = docker(&[
        "service",
        "inspect",
        "-f",
        "{{range .Endpoint.VirtualIPs}}{{.Addr}} {{end}}",
        &vip.name,
    ]);
    let vip_ip = vip_addr.split('/').next().unwrap_or_default().to_string();
    let want_url = format!("\"url\":\"http://{vip_ip}:80\"");
    let router = format!("/api/http/routers/{}@swarm", vip.name);
    let found = eventually(Duration::from_secs(30), || async {
        let svc = client
            .get(boma.api, "boma", "/api/http/services/vip@swarm")
            .await;
        let r = client.get(boma.api, "boma", &router).await;
        (svc.body.contains(&want_url)
            && svc.body.matches("\"url\"").count() == 1
            && r.body.contains(&format!("Host(`{}`)", vip.name)))
        .then_some(())
    })
    .await;
    assert!(
        found.is_some(),
        "lbswarm: vip@swarm should have the one server {want_url} and router {router} the default rule; services: {}; log:\n{}",
        client
            .get(boma.api, "boma", "/api/http/services")
            .await
            .body,
        boma.logs()
    );
}

/// Scaling `web` to three replicas adds a server for the third task.
async fn scaling_up_adds_a_server_per_new_task(boma: &SwarmBoma, client: &Client, web: &Service) {
    web.update(&["--replicas", "3"]);
    let seen = boma.backends(client, "web.swarm.test", 3).await;
    assert!(seen.contains(&format!("{}.3", web.name)), "{seen:?}");
}

/// A label update of `web`'s rule moves its route from `web.swarm.test` to `moved.swarm.test`.
async fn a_label_update_moves_the_route(boma: &SwarmBoma, client: &Client, web: &Service) {
    web.update(&[
        "--label-add",
        "traefik.http.routers.web.rule=Host(`moved.swarm.test`)",
    ]);
    boma.wait_status(client, "moved.swarm.test", 200).await;
    boma.wait_status(client, "web.swarm.test", 404).await;
}

/// Once `vip` is removed, its router is gone from the API.
async fn a_removed_service_is_no_longer_routed(boma: &SwarmBoma, client: &Client, vip: Service) {
    let router = format!("/api/http/routers/{}@swarm", vip.name);
    drop(vip);
    let gone = eventually(Duration::from_secs(30), || async {
        (client.get(boma.api, "boma", &router).await.status == 404).then_some(())
    })
    .await;
    assert!(
        gone.is_some(),
        "{router} still there; log:\n{}",
        boma.logs()
    );
}
