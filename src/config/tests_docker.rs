//! Tests of `[providers.docker]`: Traefik's keys and defaults, boma's `endpoints`, and the
//! positioned problems of bad endpoints, templates, constraints and names.

use std::path::Path;

use super::*;

fn docker(src: &str) -> DockerProvider {
    match parse(src, Path::new("boma.toml")) {
        Ok(c) => c.providers.and_then(|p| p.docker).expect("docker section"),
        Err(e) => panic!("unexpected errors:\n{e}"),
    }
}

fn problems(src: &str) -> Vec<String> {
    match parse(src, Path::new("boma.toml")) {
        Ok(c) => panic!("expected errors, parsed {c:?}"),
        Err(e) => e
            .iter()
            .map(|e| format!("{}:{}: {}", e.line, e.col, e.message))
            .collect(),
    }
}

#[test]
fn defaults_are_traefiks() {
    let d = docker("[providers.docker]\n");
    assert_eq!(d, DockerProvider::default());
    assert_eq!(d.endpoint, "unix:///var/run/docker.sock");
    assert!(d.exposed_by_default && d.watch && !d.allow_empty_services);
    assert_eq!(d.default_rule, "Host(`{{ normalize .Name }}`)");
    let engines = d.engines(false).expect("engines");
    assert_eq!(engines.len(), 1);
    assert_eq!(engines[0].namespace, "docker");
}

#[test]
fn traefik_keys_in_any_case_and_further_engines() {
    let d = docker(
        r#"
[providers.docker]
Endpoint = "tcp://127.0.0.1:2375"
exposedbydefault = false
DefaultRule = "Host(`{{ .Name }}.village.lan`)"
network = "proxy"
constraints = "Label(`zone`, `lan`)"
watch = false
allowEmptyServices = true
[[providers.docker.endpoints]]
name = "nas"
endpoint = "tcp://[::1]:2376"
"#,
    );
    assert!(!d.exposed_by_default && !d.watch && d.allow_empty_services);
    assert_eq!(d.network.as_deref(), Some("proxy"));
    assert!(d.template().is_ok() && d.constraint().expect("constraint").is_some());
    let engines = d.engines(false).expect("engines");
    let names: Vec<&str> = engines.iter().map(|e| e.namespace.as_str()).collect();
    assert_eq!(names, ["docker", "docker-nas"]);
    assert_eq!(engines[1].endpoint.to_string(), "tcp://[::1]:2376");
}

#[test]
fn bad_values_are_positioned() {
    let found = problems(
        r#"[providers.docker]
endpoint = "ssh://me@host"
defaultRule = "Host(`{{ if .Name }}`)"
constraints = "Label(`a`)"
network = ""
endpoints = [
  { name = "Bad Name", endpoint = "tcp://h:1" },
  { name = "ok", endpoint = "tcp://nowhere" },
  { name = "ok", endpoint = "unix:///run/docker.sock" },
]
"#,
    );
    let want = [
        "2:12: endpoint `ssh://me@host`: ssh is not supported",
        "3:15: default rule template: `if`: control structures are not supported",
        "4:15: constraints: `Label` takes 2 arguments, got 1",
        "5:11: `network` is empty",
        "7:12: endpoint name `Bad Name`",
        "8:29: endpoint `tcp://nowhere`: expected unix:///path/to/docker.sock or tcp://host:port",
        "9:12: endpoint name `ok` is used twice",
    ];
    assert_eq!(found.len(), want.len(), "{found:#?}");
    for w in want {
        assert!(
            found.iter().any(|f| f.starts_with(w)),
            "missing {w:?} in {found:#?}"
        );
    }
}

#[test]
fn unsupported_traefik_options_say_so() {
    for key in ["useBindPortIP", "httpClientTimeout", "username", "password"] {
        let src = format!("[providers.docker]\n{key} = \"x\"\n");
        let found = problems(&src);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(
            found[0].contains("is a Traefik option that boma does not support"),
            "{found:#?}"
        );
    }
}

#[test]
fn swarm_has_the_docker_keys_plus_refresh_seconds() {
    let src = "[providers.swarm]\nendpoint = \"tcp://10.0.0.2:2375\"\nrefreshSeconds = 30\nexposedByDefault = false\n";
    let c = parse(src, Path::new("boma.toml")).expect("parses");
    let swarm = c.providers.and_then(|p| p.swarm).expect("swarm section");
    assert_eq!(swarm.refresh(), std::time::Duration::from_secs(30));
    assert!(!swarm.exposed_by_default);
    assert_eq!(swarm.engines(true).expect("engines")[0].namespace, "swarm");
    assert_eq!(
        DockerProvider::default().refresh(),
        std::time::Duration::from_secs(15)
    );

    let found = problems("[providers.docker]\nrefreshSeconds = \"5s\"\n");
    assert!(found[0].contains("is for [providers.swarm]"), "{found:#?}");
    let found = problems(
        "[providers.swarm]\n[[providers.swarm.endpoints]]\nname = \"b\"\nendpoint = \"tcp://h:1\"\n",
    );
    assert!(found[0].contains("one manager"), "{found:#?}");
}

#[test]
fn tls_goes_with_tcp_and_its_files_must_load() {
    let found = problems("[providers.docker]\ntls = { insecureSkipVerify = true }\n");
    assert!(found[0].contains("tcp:// endpoints only"), "{found:#?}");
    let found = problems(
        "[providers.docker]\nendpoint = \"tcp://127.0.0.1:2376\"\ntls = { ca = \"/nonexistent/ca.pem\" }\n",
    );
    assert!(found[0].contains("/nonexistent/ca.pem"), "{found:#?}");
    let found = problems(
        "[providers.docker]\nendpoint = \"tcp://127.0.0.1:2376\"\ntls = { insecureSkipVerify = true, cert = \"c.pem\" }\n",
    );
    assert!(found[0].contains("go together"), "{found:#?}");
    let ok = docker(
        "[providers.docker]\nendpoint = \"tcp://127.0.0.1:2376\"\ntls = { insecureSkipVerify = true }\n",
    );
    assert!(ok.engines(false).expect("engines")[0].tls.is_some());
}
