//! Unit tests of the label tree, the default rule template, constraints, endpoints and engine
//! helpers (table-driven). Labels → fragment cases live in `tests_build.rs`.

use std::collections::BTreeMap;

use super::engine::unix_seconds;
use super::labels;
use crate::config::docker::{Endpoint, EndpointError};
use crate::rule::constraint::Constraint;
use crate::rule::template::{Model, Template, normalize};

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn tree_merges_spellings_and_splits_indexes() {
    let (tree, bad) = labels::parse(
        &map(&[
            ("traefik.http.routers.A.rule", "x"),
            ("traefik.http.routers.a.service", "s"),
            ("Traefik.HTTP.routers.b.tls.domains[1].main", "m"),
            ("other.label", "ignored"),
            ("traefikx.http", "ignored too"),
        ]),
        "traefik",
    );
    assert!(bad.is_empty(), "{bad:?}");
    let routers = tree.child("http").and_then(|h| h.child("routers")).unwrap();
    assert_eq!(routers.children.len(), 2);
    let a = routers.child("a").unwrap();
    assert_eq!(a.name, "A", "first spelling in byte order wins");
    assert_eq!(a.leaf("RULE"), Some("x"));
    assert_eq!(a.leaf("service"), Some("s"));
    let domains = routers.child("b").unwrap().child("tls").unwrap();
    let item = domains.child("domains").unwrap().child("[1]").unwrap();
    assert_eq!(item.leaf("main"), Some("m"));
}

#[test]
fn malformed_keys_are_reported() {
    let cases = [
        ("traefik.http..rule", "empty segment"),
        ("traefik.http.routers.r.", "empty segment"),
        ("traefik.http.[0]", "must follow a name"),
        ("traefik.http.a[x]", "must be a number"),
        ("traefik.http.a[999]", "index above"),
        ("traefik.http.a]", "unbalanced"),
        ("traefik.http.a[0", "unbalanced"),
    ];
    for (key, want) in cases {
        let (_, bad) = labels::parse(&map(&[(key, "v")]), "traefik");
        assert_eq!(bad.len(), 1, "{key}");
        assert!(bad[0].why.contains(want), "{key}: {}", bad[0].why);
    }
    let long = format!("traefik.{}", "a".repeat(labels::MAX_KEY_LEN));
    let (_, bad) = labels::parse(&map(&[(&long, "v")]), "traefik");
    assert!(bad[0].why.contains("longer than"));
    let big = "v".repeat(labels::MAX_VALUE_LEN + 1);
    let (_, bad) = labels::parse(&map(&[("traefik.enable", &big)]), "traefik");
    assert!(bad[0].why.contains("value longer"));
}

#[test]
fn label_count_is_bounded() {
    let many: BTreeMap<String, String> = (0..labels::MAX_LABELS + 10)
        .map(|i| {
            (
                format!("traefik.http.middlewares.m{i:05}.x"),
                "v".to_string(),
            )
        })
        .collect();
    let (tree, bad) = labels::parse(&many, "traefik");
    assert_eq!(bad.len(), 1);
    let mws = tree.child("http").unwrap().child("middlewares").unwrap();
    assert_eq!(mws.children.len(), labels::MAX_LABELS);
}

#[test]
fn toml_quotes_anything() {
    let (tree, _) = labels::parse(
        &map(&[
            ("traefik.a.\"quoted\\key", "va\"l\\ue\n\u{1}"),
            ("traefik.a.b", "true"),
        ]),
        "traefik",
    );
    let toml = labels::to_toml(&tree);
    let parsed: toml::Table = toml::from_str(&toml.text).expect(&toml.text);
    let a = parsed["a"].as_table().unwrap();
    assert_eq!(a["\"quoted\\key"].as_str(), Some("va\"l\\ue\n\u{1}"));
    assert_eq!(a["b"].as_bool(), Some(true));
    assert_eq!(toml.lines.len(), 2);
}

#[test]
fn template_renders() {
    let labels = map(&[("com.example.alias", "Wiki"), ("short", "s")]);
    let m = Model {
        name: "web-shop",
        container_name: "shop_web_1",
        labels: &labels,
    };
    let cases = [
        ("Host(`{{ normalize .Name }}`)", "Host(`web-shop`)"),
        (
            "Host(`{{ .Name }}.village.lan`)",
            "Host(`web-shop.village.lan`)",
        ),
        ("{{ .ContainerName | normalize }}", "shop-web-1"),
        ("{{ index .Labels \"com.example.alias\" | lower }}", "wiki"),
        ("{{ .Labels.short }}-{{ .Labels.missing }}", "s-"),
        ("{{- \" a \" | trim -}} b", "ab"),
        ("x {{- .Name }}", "xweb-shop"),
        ("{{ printf \"%s.%s\" .Name `lan` }}", "web-shop.lan"),
        ("{{ replace \"-\" \".\" .Name | upper }}", "WEB.SHOP"),
        ("{{ default `none` .Labels.missing }}", "none"),
        ("{{ trimSuffix \"-shop\" .Name }}", "web"),
        (
            "{{ trimPrefix `web-` (normalize .ContainerName) }}",
            "shop-web-1",
        ),
        ("{{ title `a b` }}", "A B"),
        ("plain", "plain"),
    ];
    for (src, want) in cases {
        let t = Template::parse(src).unwrap_or_else(|e| panic!("{src}: {e}"));
        assert_eq!(t.render(&m).unwrap(), want, "{src}");
    }
}

#[test]
fn template_rejects_what_it_cannot_do() {
    let cases = [
        ("{{ .Name ", "unclosed"),
        ("{{ if .Name }}x{{ end }}", "control structures"),
        ("{{ $x := 1 }}", "variables"),
        ("{{ sha256sum .Name }}", "not supported"),
        ("{{ .Nope }}", ""),
        ("{{ }}", "empty action"),
        ("{{ (.Name }}", "missing `)`"),
        ("{{ \"open }}", "unterminated"),
    ];
    for (src, want) in cases {
        match Template::parse(src) {
            Err(e) => assert!(e.to_string().contains(want), "{src}: {e}"),
            Ok(t) => {
                let labels = BTreeMap::new();
                let m = Model {
                    name: "n",
                    container_name: "c",
                    labels: &labels,
                };
                assert!(t.render(&m).is_err(), "{src} rendered");
            }
        }
    }
    let deep = format!("{{{{ {}.Name{} }}}}", "(".repeat(40), ")".repeat(40));
    assert!(Template::parse(&deep).is_err());
    assert!(Template::parse(&"x".repeat(5000)).is_err());
}

#[test]
fn normalize_like_traefik() {
    for (input, want) in [
        ("/my_app.1", "my-app-1"),
        ("web_shop", "web-shop"),
        ("--a--b--", "a-b"),
        ("été", "été"),
        ("", ""),
    ] {
        assert_eq!(normalize(input), want, "{input}");
    }
}

#[test]
fn constraints_evaluate() {
    let labels = map(&[("zone", "public"), ("stage", "dev-3")]);
    let cases = [
        ("Label(`zone`, `public`)", true),
        ("Label(\"zone\", \"private\")", false),
        ("LabelRegex(`stage`, `^dev-[0-9]$`)", true),
        ("LabelRegex(`missing`, `^$`)", true),
        ("!Label(`zone`, `public`)", false),
        ("Label(`zone`, `x`) || Label(`stage`, `dev-3`)", true),
        (
            "Label(`zone`, `public`) && (Label(`a`, `b`) || !Label(`c`, `d`))",
            true,
        ),
        (
            "Label(`zone`, `public`) && Label(`a`, `b`) || Label(`stage`, `dev-3`)",
            true,
        ),
    ];
    for (src, want) in cases {
        let c = Constraint::parse(src).unwrap_or_else(|e| panic!("{src}: {e}"));
        assert_eq!(c.matches(&labels), want, "{src}");
    }
    for bad in [
        "Label(`a`)",
        "Label(`a`, `b`",
        "Nope(`a`, `b`)",
        "Label(`a`, `b`) &",
        "LabelRegex(`a`, `(`)",
        "",
        "Label(a, b)",
    ] {
        assert!(Constraint::parse(bad).is_err(), "{bad} parsed");
    }
    let deep = format!("{}Label(`a`, `b`)", "!".repeat(100));
    assert!(Constraint::parse(&deep).is_err());
}

#[test]
fn endpoints_parse() {
    assert_eq!(
        Endpoint::parse("unix:///var/run/docker.sock"),
        Ok(Endpoint::Unix("/var/run/docker.sock".into()))
    );
    assert_eq!(
        Endpoint::parse("tcp://10.1.2.3:2375"),
        Ok(Endpoint::Tcp {
            host: "10.1.2.3".into(),
            port: 2375
        })
    );
    assert_eq!(
        Endpoint::parse("tcp://[::1]:2375").map(|e| e.to_string()),
        Ok("tcp://[::1]:2375".into())
    );
    assert_eq!(
        Endpoint::parse("http://engine.lan:2375/").map(|e| e.host_address()),
        Ok("engine.lan".into())
    );
    for bad in [
        "/var/run/docker.sock",
        "tcp://host",
        "tcp://host:x",
        "tcp://:1",
        "unix://rel",
    ] {
        assert!(
            matches!(Endpoint::parse(bad), Err(EndpointError::Syntax(_))),
            "{bad}"
        );
    }
    assert!(matches!(
        Endpoint::parse("ssh://me@host"),
        Err(EndpointError::Scheme(..))
    ));
}

#[test]
fn rfc3339_to_unix() {
    let cases = [
        ("1970-01-01T00:00:00Z", Some(0)),
        ("2024-02-29T12:34:56.123456789Z", Some(1_709_210_096)),
        ("2024-02-29T14:34:56+02:00", Some(1_709_210_096)),
        ("2000-03-01T00:00:00-01:00", Some(951_872_400)),
        ("garbage", None),
        ("2024-02-29", None),
    ];
    for (input, want) in cases {
        assert_eq!(unix_seconds(input), want, "{input}");
    }
}
