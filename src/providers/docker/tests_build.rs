//! Table-driven tests of labels → fragment, from `fixtures/containers.toml`: each case lists
//! containers (labels, state, networks, ports) and optional provider settings, the expected
//! configuration in Traefik's dynamic file format, and the problems expected (by substring).
//! Every problem produced must be expected, and every expected one produced.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::{Constraint, Container, Settings, Template, build};
use crate::dynamic::schema::{self, DynamicConfig};

const FIXTURES: &str = include_str!("fixtures/containers.toml");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    case: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    #[serde(default)]
    settings: FixtureSettings,
    containers: Vec<FixtureContainer>,
    /// Expected configuration (Traefik dynamic TOML); empty means none.
    #[serde(default)]
    expect: String,
    /// Substrings, one per expected problem.
    #[serde(default)]
    problems: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FixtureSettings {
    exposed_by_default: Option<bool>,
    default_rule: Option<String>,
    network: Option<String>,
    constraints: Option<String>,
    allow_empty_services: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FixtureContainer {
    name: String,
    id: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    running: Option<bool>,
    health: Option<String>,
    network_mode: Option<String>,
    /// `"80/tcp"` style; default `["80/tcp"]`.
    ports: Option<Vec<String>>,
    /// Network name → address; default `{ bridge = "198.18.0.<n>" }`.
    networks: Option<BTreeMap<String, String>>,
}

fn settings(f: &FixtureSettings) -> Settings {
    let mut s = Settings::new("docker");
    if let Some(v) = f.exposed_by_default {
        s.exposed_by_default = v;
    }
    if let Some(r) = &f.default_rule {
        s.default_rule = Template::parse(r).expect("fixture default rule");
    }
    s.network.clone_from(&f.network);
    if let Some(c) = &f.constraints {
        s.constraints = Some(Constraint::parse(c).expect("fixture constraints"));
    }
    if let Some(v) = f.allow_empty_services {
        s.allow_empty_services = v;
    }
    s
}

fn containers(case: &Case) -> BTreeMap<String, Container> {
    let mut out = BTreeMap::new();
    for (i, f) in case.containers.iter().enumerate() {
        let id = f.id.clone().unwrap_or_else(|| format!("{:0>12}", i + 1));
        let ports = f
            .ports
            .clone()
            .unwrap_or_else(|| vec!["80/tcp".into()])
            .iter()
            .map(|p| {
                let (n, proto) = p.split_once('/').unwrap_or((p, "tcp"));
                (n.parse().expect("fixture port"), proto.to_string())
            })
            .collect();
        let networks = f.networks.clone().unwrap_or_else(|| {
            BTreeMap::from([("bridge".to_string(), format!("198.18.0.{}", i + 2))])
        });
        out.insert(
            id.clone(),
            Container {
                id,
                name: f.name.clone(),
                service: None,
                labels: f.labels.clone(),
                running: f.running.unwrap_or(true),
                health: f.health.clone(),
                network_mode: f.network_mode.clone().unwrap_or_else(|| "default".into()),
                ports,
                networks,
            },
        );
    }
    out
}

#[test]
fn fixtures() {
    let file: File = toml::from_str(FIXTURES).expect("fixtures parse");
    assert!(file.case.len() >= 30, "fixtures lost cases");
    let mut failures = Vec::new();
    for case in &file.case {
        let fragment = build(&containers(case), &settings(&case.settings));
        let want: DynamicConfig = if case.expect.trim().is_empty() {
            DynamicConfig::default()
        } else {
            schema::parse_dynamic(&case.expect, Path::new(&case.name))
                .unwrap_or_else(|e| panic!("case {}: expected config: {e}", case.name))
        };
        if *fragment.config != want {
            failures.push(format!(
                "case `{}`: config\n got: {:#?}\nwant: {:#?}",
                case.name, fragment.config.http, want.http
            ));
        }
        let got: Vec<String> = fragment.problems.iter().map(|p| p.to_string()).collect();
        for want in &case.problems {
            if !got.iter().any(|g| g.contains(want.as_str())) {
                failures.push(format!(
                    "case `{}`: missing problem {want:?}; got {got:#?}",
                    case.name
                ));
            }
        }
        for g in &got {
            if !case.problems.iter().any(|w| g.contains(w.as_str())) {
                failures.push(format!("case `{}`: unexpected problem {g:?}", case.name));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn build_is_deterministic_and_order_free() {
    let file: File = toml::from_str(FIXTURES).expect("fixtures parse");
    for case in &file.case {
        let cs = containers(case);
        let s = settings(&case.settings);
        assert_eq!(build(&cs, &s), build(&cs, &s), "case {}", case.name);
    }
}

#[test]
fn oversized_value_leaves_its_middleware_out() {
    let big = "x".repeat(super::labels::MAX_VALUE_LEN + 1);
    let c = Container {
        id: "1".into(),
        name: "big".into(),
        labels: BTreeMap::from([
            ("traefik.http.routers.r.rule".into(), "Host(`r.lan`)".into()),
            ("traefik.http.routers.r.middlewares".into(), "hdr".into()),
            (
                "traefik.http.middlewares.hdr.headers.customrequestheaders.X".into(),
                big,
            ),
        ]),
        running: true,
        network_mode: "default".into(),
        ports: vec![(80, "tcp".into())],
        networks: BTreeMap::from([("bridge".into(), "198.18.0.2".into())]),
        ..Container::default()
    };
    let f = build(&BTreeMap::from([("1".into(), c)]), &Settings::new("docker"));
    let http = f.config.http.clone().expect("router and service kept");
    assert!(http.middlewares.is_empty());
    assert_eq!(http.routers["r"].middlewares, ["hdr"]);
    let text: Vec<String> = f.problems.iter().map(|p| p.to_string()).collect();
    assert!(
        text.iter().any(|p| p.contains("value longer than")),
        "{text:?}"
    );
    assert!(
        text.iter().any(|p| p.contains("middleware hdr: left out")),
        "{text:?}"
    );
}
