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
    let engines = d.engines().expect("engines");
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
    let engines = d.engines().expect("engines");
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
    for key in [
        "tls",
        "useBindPortIP",
        "httpClientTimeout",
        "username",
        "password",
    ] {
        let src = format!("[providers.docker]\n{key} = \"x\"\n");
        let found = problems(&src);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(
            found[0].contains("is a Traefik option that boma does not support"),
            "{found:#?}"
        );
    }
    let found = problems("[providers.swarm]\n");
    assert!(found[0].contains("does not support"), "{found:#?}");
}
