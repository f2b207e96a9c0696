//! Container discovery through the real binary and a real Docker engine: labelled containers
//! (FROM-scratch images of the project's `whoami`) become routes. Default and compose names,
//! explicit rules, port choice, several routers per container, middlewares from the file
//! provider, same-service merge with weights, disabled and unhealthy containers, the network
//! label, stop/start/rename, an engine reached over tcp that goes away and comes back, and
//! several engines with distinct names and their states in `/api/providers/docker`.
//!
//! Each test gives its containers a label of its own and its boma a constraint on it, so tests
//! running side by side on one engine never see each other's containers. Every container,
//! network and image is removed by guards, also when a test fails.

mod docker_support;
mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use docker_support::{
    Container, EngineProxy, Network, Spec, TlsEngine, boma_watching as boma, docker, unique,
};
use support::{Boma, Client, eventually};

fn label(tag: &str) -> (&'static str, &str) {
    ("boma.test", tag)
}

/// Wait until `host` answers `status` on `web`; returns the last body.
async fn wait_status(boma: &Boma, client: &Client, host: &str, path: &str, status: u16) -> String {
    let addr = boma.addr("web");
    eventually(Duration::from_secs(20), || async {
        let r = client.get(addr, host, path).await;
        (r.status == status).then_some(r.body)
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "{host}{path} never answered {status}; boma log:\n{}",
            boma.stderr()
        )
    })
}

async fn api(boma: &Boma, client: &Client, path: &str) -> serde_json::Value {
    let r = client.get(boma.addr("traefik"), "api", path).await;
    assert_eq!(r.status, 200, "{path}: {}", r.body);
    serde_json::from_str(&r.body).expect("API answers JSON")
}

/// The API's answer at `path`, or `None` while it is 404.
async fn api_opt(boma: &Boma, client: &Client, path: &str) -> Option<serde_json::Value> {
    let r = client.get(boma.addr("traefik"), "api", path).await;
    (r.status != 404).then(|| serde_json::from_str(&r.body).expect("API answers JSON"))
}

/// Names of the routers the docker provider made (`x@docker...`).
async fn docker_routers(boma: &Boma, client: &Client) -> Vec<String> {
    let routers = api(boma, client, "/api/http/routers").await;
    (routers.as_array().unwrap().iter())
        .filter_map(|r| r["name"].as_str())
        .filter(|n| n.contains("@docker"))
        .map(String::from)
        .collect()
}

fn normalize(s: &str) -> String {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("-")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_compose_and_explicit_names() {
    let tag = unique("names");
    let plain = Container::run(Spec {
        labels: vec![label(&tag)],
        expose: vec![80],
        ..Spec::default()
    });
    let project = unique("proj");
    let compose = Container::run(Spec {
        labels: vec![
            label(&tag),
            ("com.docker.compose.service", "web"),
            ("com.docker.compose.project", &project),
        ],
        expose: vec![80],
        ..Spec::default()
    });
    let explicit = Container::run(Spec {
        labels: vec![
            label(&tag),
            (
                "traefik.http.routers.api.rule",
                "Host(`explicit.test`) && PathPrefix(`/api`)",
            ),
        ],
        expose: vec![80],
        ..Spec::default()
    });
    let boma = boma(&tag, None, "", "");
    let client = Client::new();

    let body = wait_status(&boma, &client, &normalize(&plain.name), "/x", 200).await;
    assert_eq!(body.lines().next(), Some(plain.name.as_str()));
    assert!(body.contains("GET /x HTTP/1.1"), "{body}");

    let compose_host = normalize(&format!("web_{project}"));
    let body = wait_status(&boma, &client, &compose_host, "/", 200).await;
    assert_eq!(body.lines().next(), Some(compose.name.as_str()));

    let body = wait_status(&boma, &client, "explicit.test", "/api/v1", 200).await;
    assert_eq!(body.lines().next(), Some(explicit.name.as_str()));
    let r = client.get(boma.addr("web"), "explicit.test", "/").await;
    assert_eq!(r.status, 404, "only /api is routed");
    // The explicit router replaces the default one.
    let r = client
        .get(boma.addr("web"), &normalize(&explicit.name), "/")
        .await;
    assert_eq!(r.status, 404);

    let names = docker_routers(&boma, &client).await;
    assert!(names.contains(&"api@docker".to_string()), "{names:?}");
    assert!(
        names.contains(&format!("{compose_host}@docker")),
        "{names:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ports_routers_and_file_middlewares() {
    let tag = unique("ports");
    let dynamic = r#"
[http.middlewares.tag.headers.customResponseHeaders]
X-Via-File = "yes"
"#;
    let lowest = Container::run(Spec {
        labels: vec![
            label(&tag),
            ("traefik.http.routers.a.rule", "Host(`a.test`)"),
            ("traefik.http.routers.b.rule", "Host(`b.test`)"),
            ("traefik.http.routers.b.middlewares", "tag@file"),
        ],
        expose: vec![9000, 8080],
        ..Spec::default()
    });
    let chosen = Container::run(Spec {
        labels: vec![
            label(&tag),
            ("traefik.http.routers.p.rule", "Host(`p.test`)"),
            ("traefik.http.services.p.loadbalancer.server.port", "9000"),
        ],
        expose: vec![8080, 9000],
        ..Spec::default()
    });
    let boma = boma(&tag, None, "", dynamic);
    let client = Client::new();

    let body = wait_status(&boma, &client, "a.test", "/", 200).await;
    assert!(
        body.starts_with(&format!("{}\nport: 8080\n", lowest.name)),
        "{body}"
    );
    let r = client.get(boma.addr("web"), "a.test", "/").await;
    assert!(r.headers.get("x-via-file").is_none());

    wait_status(&boma, &client, "b.test", "/", 200).await;
    let r = client.get(boma.addr("web"), "b.test", "/").await;
    assert_eq!(
        r.headers.get("x-via-file").map(|v| v.as_bytes()),
        Some(&b"yes"[..])
    );
    assert!(r.body.contains("port: 8080"), "{}", r.body);

    let body = wait_status(&boma, &client, "p.test", "/", 200).await;
    assert!(
        body.starts_with(&format!("{}\nport: 9000\n", chosen.name)),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_service_containers_merge_with_weights() {
    let tag = unique("merge");
    let spec = |weight: &'static str, t: &str| -> Vec<(&'static str, String)> {
        vec![
            ("boma.test", t.to_string()),
            ("traefik.http.routers.app.rule", "Host(`w.test`)".into()),
            (
                "traefik.http.services.app.loadbalancer.server.weight",
                weight.into(),
            ),
        ]
    };
    let stable_labels = spec("3", &tag);
    let canary_labels = spec("1", &tag);
    let run = |labels: &Vec<(&'static str, String)>| {
        Container::run(Spec {
            labels: labels.iter().map(|(k, v)| (*k, v.as_str())).collect(),
            expose: vec![80],
            ..Spec::default()
        })
    };
    let stable = run(&stable_labels);
    let canary = run(&canary_labels);
    let boma = boma(&tag, None, "", "");
    let client = Client::new();
    let addr = boma.addr("web");

    let services = eventually(Duration::from_secs(20), || async {
        let v = api_opt(&boma, &client, "/api/http/services/app@docker").await?;
        let n = v["loadBalancer"]["servers"].as_array().map_or(0, Vec::len);
        (n == 2).then_some(v)
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "service app@docker never had 2 servers; log:\n{}",
            boma.stderr()
        )
    });
    let weights: Vec<u64> = (services["loadBalancer"]["servers"]
        .as_array()
        .unwrap()
        .iter())
    .filter_map(|s| s["weight"].as_u64())
    .collect();
    assert_eq!(weights.len(), 2, "{services}");

    let mut counts: BTreeMap<String, u32> = BTreeMap::new();
    for _ in 0..40 {
        let r = client.get(addr, "w.test", "/").await;
        assert_eq!(r.status, 200, "{}", r.body);
        *counts.entry(r.backend().to_string()).or_default() += 1;
    }
    assert_eq!(counts.get(&stable.name), Some(&30), "{counts:?}");
    assert_eq!(counts.get(&canary.name), Some(&10), "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_and_unhealthy_containers_are_left_out() {
    let tag = unique("health");
    let _off = Container::run(Spec {
        labels: vec![
            label(&tag),
            ("traefik.enable", "false"),
            ("traefik.http.routers.off.rule", "Host(`off.test`)"),
        ],
        expose: vec![80],
        ..Spec::default()
    });
    let sick = Container::run(Spec {
        labels: vec![
            label(&tag),
            ("traefik.http.routers.sick.rule", "Host(`sick.test`)"),
        ],
        env: vec![("WHOAMI_UNHEALTHY", "1")],
        expose: vec![80],
        healthcheck: true,
        ..Spec::default()
    });
    let ok = Container::run(Spec {
        labels: vec![
            label(&tag),
            ("traefik.http.routers.ok.rule", "Host(`ok.test`)"),
        ],
        expose: vec![80],
        healthcheck: true,
        ..Spec::default()
    });
    let boma = boma(&tag, None, "", "");
    let client = Client::new();
    let addr = boma.addr("web");

    // Routed once Docker says healthy (not while starting).
    let body = wait_status(&boma, &client, "ok.test", "/", 200).await;
    assert_eq!(body.lines().next(), Some(ok.name.as_str()));
    assert_eq!(ok.health(), "healthy");
    eventually(Duration::from_secs(20), || async {
        (sick.health() == "unhealthy").then_some(())
    })
    .await
    .expect("the sick container never became unhealthy");
    assert_eq!(client.get(addr, "sick.test", "/").await.status, 404);
    assert_eq!(client.get(addr, "off.test", "/").await.status, 404);
    let names = docker_routers(&boma, &client).await;
    assert_eq!(names, ["ok@docker"], "only the healthy container is routed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_label_chooses_the_address() {
    let tag = unique("net");
    let net = Network::create();
    let c = Container::run(Spec {
        labels: vec![
            label(&tag),
            ("traefik.http.routers.n.rule", "Host(`n.test`)"),
            ("traefik.docker.network", &net.name),
        ],
        expose: vec![80],
        networks: vec!["bridge", &net.name],
        ..Spec::default()
    });
    let boma = boma(&tag, None, "", "");
    let client = Client::new();
    wait_status(&boma, &client, "n.test", "/", 200).await;
    let svc = api(
        &boma,
        &client,
        &format!("/api/http/services/{}@docker", normalize(&c.name)),
    )
    .await;
    let url = svc["loadBalancer"]["servers"][0]["url"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let want = format!("http://{}:80", c.ip(&net.name));
    assert_eq!(url, want, "the server is on the labelled network");
    assert_ne!(c.ip("bridge"), c.ip(&net.name));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_start_and_rename_follow_events() {
    let tag = unique("life");
    let c = Container::run(Spec {
        labels: vec![label(&tag)],
        expose: vec![80],
        ..Spec::default()
    });
    let boma = boma(&tag, None, "", "");
    let client = Client::new();
    let host = normalize(&c.name);
    wait_status(&boma, &client, &host, "/", 200).await;
    c.stop();
    wait_status(&boma, &client, &host, "/", 404).await;
    c.start();
    wait_status(&boma, &client, &host, "/", 200).await;
    let renamed = unique("renamed");
    docker(&["rename", &c.id, &renamed]);
    wait_status(&boma, &client, &normalize(&renamed), "/", 200).await;
    wait_status(&boma, &client, &host, "/", 404).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_engine_down_at_start_away_and_back() {
    let tag = unique("tcp");
    let proxy = EngineProxy::new().await;
    let first = Container::run(Spec {
        labels: vec![
            label(&tag),
            ("traefik.http.routers.first.rule", "Host(`first.test`)"),
        ],
        expose: vec![80],
        ..Spec::default()
    });
    // The engine does not answer when boma starts: boma starts anyway and retries.
    let boma = boma(&tag, Some(&proxy.endpoint()), "", "");
    let client = Client::new();
    let addr = boma.addr("web");
    let problems = eventually(Duration::from_secs(10), || async {
        let p = api(&boma, &client, "/api/problems").await;
        p.to_string()
            .contains("cannot reach the engine")
            .then_some(())
    })
    .await;
    assert!(problems.is_some(), "the unreachable engine is reported");
    proxy.up().await;
    wait_status(&boma, &client, "first.test", "/", 200).await;

    // The engine goes away: the last routes keep serving.
    proxy.down().await;
    eventually(Duration::from_secs(10), || async {
        let p = api(&boma, &client, "/api/problems").await;
        p.to_string()
            .contains("cannot reach the engine")
            .then_some(())
    })
    .await
    .expect("the lost engine is reported");
    assert_eq!(client.get(addr, "first.test", "/").await.status, 200);

    // Changes while away are picked up by the fresh list once it is back.
    first.stop();
    let second = Container::run(Spec {
        labels: vec![
            label(&tag),
            ("traefik.http.routers.second.rule", "Host(`second.test`)"),
        ],
        expose: vec![80],
        ..Spec::default()
    });
    proxy.up().await;
    let body = wait_status(&boma, &client, "second.test", "/", 200).await;
    assert_eq!(body.lines().next(), Some(second.name.as_str()));
    wait_status(&boma, &client, "first.test", "/", 404).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_engine_with_client_certificates() {
    let tag = unique("tls");
    let engine = TlsEngine::start().await;
    let _c = Container::run(Spec {
        labels: vec![
            label(&tag),
            ("traefik.http.routers.tls.rule", "Host(`tls.test`)"),
        ],
        expose: vec![80],
        ..Spec::default()
    });
    let boma = boma(&tag, None, &engine.config("client"), "");
    let client = Client::new();
    wait_status(&boma, &client, "tls.test", "/", 200).await;

    // A client certificate from a CA the engine does not trust: no routes, a problem.
    let rogue = self::boma(&tag, None, &engine.config("rogue"), "");
    let reported = eventually(Duration::from_secs(10), || async {
        let p = api(&rogue, &client, "/api/problems").await;
        p.to_string()
            .contains("cannot reach the engine")
            .then_some(())
    })
    .await;
    assert!(reported.is_some(), "the refused TLS session is reported");
    assert_eq!(
        client.get(rogue.addr("web"), "tls.test", "/").await.status,
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_engines_keep_distinct_names() {
    let tag = unique("multi");
    let proxy = EngineProxy::new().await;
    proxy.up().await;
    let c = Container::run(Spec {
        labels: vec![
            label(&tag),
            ("traefik.http.routers.both.rule", "Host(`both.test`)"),
        ],
        expose: vec![80],
        ..Spec::default()
    });
    let extra = format!(
        "endpoints = [{{ name = \"remote\", endpoint = \"{}\" }}]",
        proxy.endpoint()
    );
    let boma = boma(&tag, None, &extra, "");
    let client = Client::new();
    let body = wait_status(&boma, &client, "both.test", "/", 200).await;
    assert_eq!(body.lines().next(), Some(c.name.as_str()));
    let names = eventually(Duration::from_secs(10), || async {
        let names = docker_routers(&boma, &client).await;
        (names.len() == 2).then_some(names)
    })
    .await
    .expect("one router per engine");
    assert_eq!(names, ["both@docker", "both@docker-remote"]);
    let states = engine_states(&boma, &client).await;
    assert_eq!(
        states,
        [
            ("docker".into(), "connected".into()),
            ("docker-remote".into(), "connected".into())
        ]
    );

    // Not watched: listed once, and shown so rather than as followed.
    let unwatched = self::boma(&tag, None, "watch = false", "");
    wait_status(&unwatched, &client, "both.test", "/", 200).await;
    let states = engine_states(&unwatched, &client).await;
    assert_eq!(states, [("docker".into(), "listed".into())]);

    // The engine goes away: shown unreachable, with why, while its routes keep serving.
    proxy.down().await;
    let gone = eventually(Duration::from_secs(10), || async {
        let states = engine_states(&boma, &client).await;
        (states[1].1 == "unreachable").then_some(states)
    })
    .await;
    assert!(gone.is_some(), "the lost engine is shown unreachable");
    let all = api(&boma, &client, "/api/providers/docker").await;
    assert!(
        all[1]["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{all}"
    );
    assert_eq!(docker_routers(&boma, &client).await.len(), 2);
}

/// Each engine's provider and state, from `/api/providers/docker`.
async fn engine_states(boma: &Boma, client: &Client) -> Vec<(String, String)> {
    let all = api(boma, client, "/api/providers/docker").await;
    (all.as_array().expect("a list").iter())
        .map(|e| {
            let field = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            (field("provider"), field("state"))
        })
        .collect()
}
