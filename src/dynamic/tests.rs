//! `assemble` from fixtures: name qualification, references across providers, cycles, entrypoint
//! selection, precedence, problems, limits, and reuse of unchanged services across reloads.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use super::schema::parse_dynamic;
use super::{AssembleCtx, EntryPointSpec, Fragment, Snapshot, assemble, qualify};

fn ctx(eps: &[(&str, bool)]) -> AssembleCtx {
    AssembleCtx {
        entrypoints: eps
            .iter()
            .map(|(n, d)| EntryPointSpec {
                name: n.to_string(),
                as_default: *d,
                middlewares: Vec::new(),
                tls: None,
            })
            .collect(),
        max_routes: 100,
        middleware_bounds: Default::default(),
        admin: Default::default(),
        resolvers: Default::default(),
    }
}

fn frags(list: &[(&str, &str)]) -> BTreeMap<String, Fragment> {
    list.iter()
        .map(|(ns, text)| {
            let config = parse_dynamic(text, Path::new("fixture.toml"))
                .unwrap_or_else(|e| panic!("fixture does not parse: {e}"));
            (
                ns.to_string(),
                Fragment {
                    config: Arc::new(config),
                    problems: Vec::new(),
                    leases: Vec::new(),
                },
            )
        })
        .collect()
}

fn build(list: &[(&str, &str)]) -> Snapshot {
    assemble(
        &frags(list),
        &ctx(&[("web", false), ("admin", false)]),
        None,
        1,
    )
}

fn problem_about(s: &Snapshot, source: &str, needle: &str) -> bool {
    s.problems
        .iter()
        .any(|p| p.source == source && p.message.contains(needle))
}

const SVC: &str = r#"
[http.services.app.loadBalancer]
[[http.services.app.loadBalancer.servers]]
url = "http://127.0.0.1:9001"
"#;

#[test]
fn names_are_qualified_and_cross_provider_refs_resolve() {
    let file = format!(
        "{SVC}[http.middlewares.auth.basicAuth]\nusers = [\"u:{{SHA}}qUqP5cyxm6YcTAhz05Hph5gvu9M=\"]\n"
    );
    let docker = r#"
[http.routers.web]
rule = "Host(`a.lan`)"
service = "app@file"
middlewares = ["auth@file"]
"#;
    let s = build(&[("file", &file), ("docker", docker)]);
    assert!(s.problems.is_empty(), "{:?}", s.problems);
    assert_eq!(s.routers["web@docker"].status(), "enabled");
    let routes = s.table("web", false).unwrap().routes();
    let route = routes.iter().find(|r| r.name == "web@docker").unwrap();
    assert_eq!(route.service_name, "app@file");
    assert!(Arc::ptr_eq(&route.service, &s.services["app@file"]));
    assert!(Arc::ptr_eq(
        &route.middlewares[0],
        &s.middlewares["auth@file"]
    ));
    assert_eq!(route.middlewares.len(), 1);
    // The API's view: the router's own configuration, references qualified as resolved.
    let c = s.router_config("web@docker").unwrap();
    assert_eq!(qualify(&c.service, "docker"), "app@file");
    assert_eq!(s.router_config("nothing@docker"), None);
    assert!(s.services.contains_key("app@file"));
    assert!(s.hosts.contains("a.lan"));
    // Unqualified references stay inside their provider: `app` in docker is `app@docker`.
    let s = build(&[
        ("file", SVC),
        (
            "docker",
            "[http.routers.x]\nrule = \"Path(`/`)\"\nservice = \"app\"\n",
        ),
    ]);
    assert_eq!(s.routers["x@docker"].status(), "disabled");
    assert!(problem_about(&s, "router x@docker", "app@docker"));
}

#[test]
fn a_bad_router_is_disabled_and_the_rest_serve() {
    let text = format!(
        "{SVC}
[http.routers.good]
rule = \"Host(`good.lan`)\"
service = \"app\"

[http.routers.badrule]
rule = \"Hots(`x`)\"
service = \"app\"

[http.routers.nosvc]
rule = \"Host(`y`)\"
service = \"missing\"

[http.routers.nomw]
rule = \"Host(`z`)\"
service = \"app\"
middlewares = [\"nope\"]

[http.routers.tls]
rule = \"Host(`t`)\"
service = \"app\"
[http.routers.tls.tls]
"
    );
    let s = build(&[("file", &text)]);
    assert_eq!(s.routers["good@file"].status(), "enabled");
    for bad in ["badrule@file", "nosvc@file", "nomw@file"] {
        assert_eq!(s.routers[bad].status(), "disabled", "{bad}");
        assert!(s.routers[bad].error.is_some());
    }
    assert!(problem_about(&s, "router badrule@file", "column 1"));
    assert!(problem_about(&s, "router nomw@file", "nope@file"));
    let web = s.table("web", false).expect("web table");
    assert_eq!(web.routes().len(), 1);
    // A router with `tls` is served, over TLS only.
    assert_eq!(s.routers["tls@file"].status(), "enabled");
    let web_tls = s.table("web", true).expect("web TLS table");
    assert_eq!(web_tls.routes()[0].name, "tls@file");
}

#[test]
fn tls_routes_options_by_host_and_entrypoint_defaults() {
    let mut c = ctx(&[("web", true), ("websecure", false)]);
    c.entrypoints[1].tls = Some(crate::config::EntryPointTls {
        options: Some("modern".into()),
        ..Default::default()
    });
    let text = format!(
        "{SVC}
[http.routers.both]
rule = \"Host(`both.lan`)\"
service = \"app\"
entryPoints = [\"web\", \"websecure\"]

[http.routers.own]
rule = \"Host(`own.lan`) || Host(`shared.lan`)\"
service = \"app\"
entryPoints = [\"web\"]
[http.routers.own.tls]
options = \"legacy\"
certResolver = \"le\"

[http.routers.other]
rule = \"Host(`shared.lan`)\"
service = \"app\"
entryPoints = [\"websecure\"]

[http.routers.clash]
rule = \"Host(`shared.lan`) && Path(`/clash`)\"
service = \"app\"
entryPoints = [\"web\"]
[http.routers.clash.tls]
options = \"modern\"

[tls.options.modern]
minVersion = \"VersionTLS13\"
[tls.options.bad]
cipherSuites = [\"TLS_NOT_A_SUITE\"]
"
    );
    let frags = frags(&[("file", &text)]);
    let s = assemble(&frags, &c, None, 1);
    // `both`: plain on web, TLS on websecure (its http.tls); `own`: TLS on web.
    let names = |ep: &str, tls: bool| -> Vec<String> {
        (s.table(ep, tls).map_or(&[][..], |t| t.routes()).iter())
            .map(|r| r.name.clone())
            .collect()
    };
    assert_eq!(names("web", false), ["both@file"]);
    assert_eq!(names("web", true), ["own@file", "clash@file"]);
    // (in precedence order: the longer rule first)
    assert_eq!(names("websecure", true), ["other@file", "both@file"]);
    assert!(names("websecure", false).is_empty());
    let opts = |ep: &str, h: &str| {
        let key = (ep.to_string(), h.to_string());
        s.tls.input.host_options[&key].clone()
    };
    assert_eq!(opts("websecure", "both.lan"), "modern@file");
    assert_eq!(opts("web", "own.lan"), "legacy@file");
    // Two option sets asked for one host on one entry point: the default ones, and a problem;
    // on another entry point the host keeps its own set.
    assert_eq!(opts("web", "shared.lan"), "default");
    let clash = "host shared.lan on entry point web";
    assert!(problem_about(&s, clash, "different TLS options"));
    assert_eq!(opts("websecure", "shared.lan"), "modern@file");
    assert!(problem_about(
        &s,
        "host own.lan",
        "`legacy@file` do not exist"
    ));
    assert!(problem_about(&s, "router own@file", "certResolver `le`"));
    assert!(problem_about(&s, "tls options bad@file", "TLS_NOT_A_SUITE"));
    // A host gets its set, a host no router names the default one, and a host whose set does
    // not exist (or did not compile) is refused rather than served with the default.
    let set = |ep: &str, h: &str| s.tls.config_for(ep, Some(h)).map(|(_, n)| n.to_string());
    assert_eq!(set("websecure", "both.lan").as_deref(), Some("modern@file"));
    assert_eq!(set("websecure", "nowhere.lan").as_deref(), Some("default"));
    assert_eq!(set("web", "own.lan"), None);
    assert_eq!(set("web", "both.lan").as_deref(), Some("default"));
    // Reassembling the same input reuses the compiled setup.
    let again = assemble(&frags, &c, Some(&s), 2);
    assert!(Arc::ptr_eq(&s.tls, &again.tls));
}

#[test]
fn cycles_are_problems_not_hangs() {
    let text = r#"
[http.services.a.weighted]
[[http.services.a.weighted.services]]
name = "b"
[http.services.b.weighted]
[[http.services.b.weighted.services]]
name = "a"

[http.routers.r]
rule = "Path(`/`)"
service = "a"
middlewares = ["c1"]

[http.middlewares.c1.chain]
middlewares = ["c2"]
[http.middlewares.c2.chain]
middlewares = ["c1"]
"#;
    let s = build(&[("file", text)]);
    assert!(
        s.problems.iter().any(|p| p.message.contains("cycle")),
        "{:?}",
        s.problems
    );
    assert_eq!(s.routers["r@file"].status(), "disabled");
}

#[test]
fn entrypoints_default_and_explicit() {
    let text = format!(
        "{SVC}
[http.routers.all]
rule = \"Path(`/a`)\"
service = \"app\"

[http.routers.one]
rule = \"Path(`/b`)\"
service = \"app\"
entryPoints = [\"admin\"]

[http.routers.ghost]
rule = \"Path(`/c`)\"
service = \"app\"
entryPoints = [\"nowhere\"]
"
    );
    // No entrypoint marked asDefault: routers without entryPoints go on all of them.
    let s = assemble(
        &frags(&[("file", &text)]),
        &ctx(&[("web", false), ("admin", false)]),
        None,
        1,
    );
    assert_eq!(s.table("web", false).map(|t| t.routes().len()), Some(1));
    assert_eq!(s.table("admin", false).map(|t| t.routes().len()), Some(2));
    assert!(problem_about(
        &s,
        "router ghost@file",
        "`nowhere` does not exist"
    ));
    assert_eq!(s.routers["ghost@file"].status(), "disabled");
    // With asDefault, only the marked ones.
    let s = assemble(
        &frags(&[("file", &text)]),
        &ctx(&[("web", true), ("admin", false)]),
        None,
        1,
    );
    assert_eq!(s.table("web", false).map(|t| t.routes().len()), Some(1));
    assert_eq!(s.table("admin", false).map(|t| t.routes().len()), Some(1));
}

#[test]
fn priorities_default_to_rule_length() {
    let text = format!(
        "{SVC}
[http.routers.short]
rule = \"Host(`a.lan`)\"
service = \"app\"

[http.routers.long]
rule = \"Host(`a.lan`) && PathPrefix(`/api`)\"
service = \"app\"

[http.routers.pinned]
rule = \"PathPrefix(`/`)\"
service = \"app\"
priority = 1000
"
    );
    let s = build(&[("file", &text)]);
    let names: Vec<&str> = s
        .table("web", false)
        .unwrap()
        .routes()
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(names, vec!["pinned@file", "long@file", "short@file"]);
    assert_eq!(
        s.routers["short@file"].priority,
        "Host(`a.lan`)".len() as i64
    );
}

#[test]
fn unchanged_services_keep_their_state_across_reloads() {
    let v1 = format!(
        "{SVC}
[http.services.other.loadBalancer]
[[http.services.other.loadBalancer.servers]]
url = \"http://127.0.0.1:9002\"

[http.services.canary.weighted]
[[http.services.canary.weighted.services]]
name = \"app\"
weight = 3
[[http.services.canary.weighted.services]]
name = \"other\"
"
    );
    let c = ctx(&[("web", false)]);
    let first = assemble(&frags(&[("file", &v1)]), &c, None, 1);
    let same = assemble(&frags(&[("file", &v1)]), &c, Some(&first), 2);
    for name in ["app@file", "other@file", "canary@file"] {
        assert!(
            Arc::ptr_eq(&first.services[name], &same.services[name]),
            "{name} rebuilt"
        );
    }
    let v2 = v1.replace("9002", "9003");
    let changed = assemble(&frags(&[("file", &v2)]), &c, Some(&same), 3);
    assert!(Arc::ptr_eq(
        &same.services["app@file"],
        &changed.services["app@file"]
    ));
    assert!(!Arc::ptr_eq(
        &same.services["other@file"],
        &changed.services["other@file"]
    ));
    // The weighted service points at a new child, so it is rebuilt too.
    assert!(!Arc::ptr_eq(
        &same.services["canary@file"],
        &changed.services["canary@file"]
    ));
}

/// The first middleware of `router` on entrypoint `web`.
fn first_mw(s: &Snapshot, router: &str) -> Arc<crate::runtime::middlewares::Middleware> {
    let routes = s.table("web", false).unwrap().routes();
    let route = routes.iter().find(|r| r.name == router).unwrap();
    Arc::clone(&route.middlewares[0])
}

/// Whether `mw` lets one more request from 192.0.2.7 through.
fn admits(mw: &crate::runtime::middlewares::Middleware) -> bool {
    use crate::runtime::middlewares::{Ctx, Flow};
    let mut ctx = Ctx::new(
        "192.0.2.7".parse().unwrap(),
        "http",
        std::time::Instant::now(),
    );
    let (mut parts, _) = http::Request::new(()).into_parts();
    matches!(mw.on_request(&mut parts, &mut ctx), Flow::Continue)
}

#[test]
fn unchanged_middlewares_keep_their_state_across_reloads() {
    let v1 = format!(
        "{SVC}
[http.middlewares.limit.rateLimit]
average = 1
period = \"1h\"
burst = 1
[http.middlewares.both.chain]
middlewares = [\"limit\"]
[http.routers.a]
rule = \"Host(`a.lan`)\"
service = \"app\"
middlewares = [\"both\"]
"
    );
    let c = ctx(&[("web", false)]);
    let first = assemble(&frags(&[("file", &v1)]), &c, None, 1);
    assert!(admits(&first_mw(&first, "a@file")));
    assert!(!admits(&first_mw(&first, "a@file")), "the burst is spent");
    // Another router appears (a container event): the bucket must still be spent.
    let v2 = format!("{v1}[http.routers.b]\nrule = \"Host(`b.lan`)\"\nservice = \"app\"\n");
    let second = assemble(&frags(&[("file", &v2)]), &c, Some(&first), 2);
    assert!(Arc::ptr_eq(
        &first_mw(&first, "a@file"),
        &first_mw(&second, "a@file")
    ));
    assert!(!admits(&first_mw(&second, "a@file")), "state was reset");
    // Its own configuration changes: a fresh middleware with fresh state.
    let v3 = v2.replace("burst = 1", "burst = 2");
    let third = assemble(&frags(&[("file", &v3)]), &c, Some(&second), 3);
    assert!(!Arc::ptr_eq(
        &first_mw(&second, "a@file"),
        &first_mw(&third, "a@file")
    ));
    assert!(admits(&first_mw(&third, "a@file")));
}

#[test]
fn limits_and_unsupported_parts_are_reported() {
    let mut text = String::from(SVC);
    for i in 0..5 {
        text.push_str(&format!(
            "[http.routers.r{i}]\nrule = \"Path(`/{i}`)\"\nservice = \"app\"\nentryPoints = [\"web\"]\n"
        ));
    }
    text.push_str(
        "[http.services.m.mirroring]\nservice = \"app\"\n[http.routers.mir]\nrule = \"Path(`/m`)\"\nservice = \"m\"\nentryPoints = [\"web\"]\n[tcp.routers.t]\nrule = \"HostSNI(`*`)\"\nservice = \"x\"\n",
    );
    let mut c = ctx(&[("web", false)]);
    c.max_routes = 3;
    let s = assemble(&frags(&[("file", &text)]), &c, None, 1);
    assert_eq!(s.table("web", false).unwrap().routes().len(), 3);
    assert!(
        s.problems
            .iter()
            .any(|p| p.message.contains("limits.max_routes"))
    );
    assert!(problem_about(&s, "service m@file", "mirroring"));
    assert!(problem_about(&s, "provider file", "tcp"));
}

#[test]
fn internal_services_exist_without_definition() {
    let text = "[http.routers.api]\nrule = \"PathPrefix(`/api`)\"\nservice = \"api@internal\"\n";
    let s = build(&[("file", text)]);
    assert_eq!(
        s.routers["api@file"].status(),
        "enabled",
        "{:?}",
        s.problems
    );
}

#[test]
fn errors_pages_come_from_a_defined_http_service() {
    let text = format!(
        "{SVC}
[http.routers.ok]
rule = \"Host(`ok`)\"
service = \"app\"
middlewares = [\"pages\"]
[http.routers.gone]
rule = \"Host(`gone`)\"
service = \"app\"
middlewares = [\"nopages\"]
[http.routers.inner]
rule = \"Host(`inner`)\"
service = \"app\"
middlewares = [\"apipages\"]
[http.middlewares.pages.errors]
status = [\"500\"]
service = \"app\"
[http.middlewares.nopages.errors]
status = [\"500\"]
service = \"missing\"
[http.middlewares.apipages.errors]
status = [\"500\"]
service = \"api@internal\"
"
    );
    let s = build(&[("file", &text)]);
    assert_eq!(s.routers["ok@file"].status(), "enabled", "{:?}", s.problems);
    assert_eq!(s.routers["gone@file"].status(), "disabled");
    assert!(problem_about(&s, "router gone@file", "missing@file"));
    // An internal service answers pages itself (the proxy calls its handler).
    assert_eq!(
        s.routers["inner@file"].status(),
        "enabled",
        "{:?}",
        s.problems
    );
}

/// A route of router `name` on entrypoint `ep`.
fn route<'a>(s: &'a Snapshot, ep: &str, name: &str) -> &'a super::table::Route {
    s.tables[ep]
        .routes()
        .iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no route {name} on {ep}"))
}

#[test]
fn the_api_behind_an_operators_router_asks_for_admin_users() {
    use crate::runtime::balance::{Internal, Service};
    use crate::runtime::middlewares::{BasicAuthConfig, Compiled, MiddlewareConfig, compile};
    let text = "[http.routers.api]\nrule = \"PathPrefix(`/api`)\"\nservice = \"api@internal\"\n\
                [http.routers.dash]\nrule = \"PathPrefix(`/dashboard`)\"\nservice = \"dashboard@internal\"\n\
                [http.routers.ping]\nrule = \"Path(`/ping`)\"\nservice = \"ping@internal\"\n";
    // Without [admin] users: the API and dashboard routes answer how to set them; ping does not
    // change; the internal provider's own routers ([api] insecure) are left as they are.
    let frags = frags(&[("file", text), ("internal", text)]);
    let unset = assemble(&frags, &ctx(&[("web", false)]), None, 1);
    for name in ["api@file", "dash@file"] {
        assert!(
            matches!(
                *route(&unset, "web", name).service,
                Service::Internal(Internal::Locked)
            ),
            "{name}"
        );
    }
    assert!(matches!(
        *route(&unset, "web", "ping@file").service,
        Service::Internal(Internal::Ping)
    ));
    assert!(matches!(
        *route(&unset, "web", "api@internal").service,
        Service::Internal(Internal::Api)
    ));
    // With users: the real services, the check last in the chain, the same one everywhere.
    let auth = MiddlewareConfig {
        basic_auth: Some(BasicAuthConfig {
            users: vec!["admin:{SHA}qUqP5cyxm6YcTAhz05Hph5gvu9M=".into()],
            ..Default::default()
        }),
        ..Default::default()
    };
    let Ok(Compiled::One(gate)) = compile(&auth) else {
        panic!("basicAuth compiles");
    };
    let gate = Arc::new(gate);
    let mut with = ctx(&[("web", false)]);
    with.admin = super::AdminGate::Users(Arc::clone(&gate));
    let users = assemble(&frags, &with, None, 1);
    for name in ["api@file", "dash@file"] {
        let r = route(&users, "web", name);
        assert!(!matches!(*r.service, Service::Internal(Internal::Locked)));
        assert!(Arc::ptr_eq(r.middlewares.last().unwrap(), &gate), "{name}");
    }
    assert!(route(&users, "web", "ping@file").middlewares.is_empty());
    assert!(route(&users, "web", "api@internal").middlewares.is_empty());
}
