//! Routing through the real binary: precedence, forwarded headers, entrypoint redirections,
//! middlewares from the file, and hot reload (a valid change applies, an invalid one keeps the
//! last good routes serving).

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::{BASIC_STATIC, Backend, Boma, Client, eventually};

fn lb(name: &str, url: &str) -> String {
    format!(
        "[http.services.{name}.loadBalancer]\n[[http.services.{name}.loadBalancer.servers]]\nurl = \"{url}\"\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn precedence_and_forwarded_headers() {
    let (a, b, c) = (
        Backend::start("a").await,
        Backend::start("b").await,
        Backend::start("c").await,
    );
    let boma = Boma::start(BASIC_STATIC, Some(&precedence_routes(&a, &b, &c)));
    let client = Client::new();
    let addr = boma.addr("web");
    boma.routed(&client, "app.test", "/").await;

    the_longest_rule_wins_unless_a_priority_is_set(&client, addr).await;
    the_backend_sees_forwarded_headers_and_no_hop_by_hop_ones(&client, addr).await;
    without_a_route_the_answer_is_traefiks_404(&boma, &client, addr, &a).await;
}

/// Routers for app.test (`a`), its `/api` prefix (`b`), a catch-all pinned to priority 1 and
/// `/api/special` forced to priority 1000 (both `c`).
fn precedence_routes(a: &Backend, b: &Backend, c: &Backend) -> String {
    format!(
        r#"
[http.routers.host]
rule = "Host(`app.test`)"
service = "a"

[http.routers.api]
rule = "Host(`app.test`) && PathPrefix(`/api`)"
service = "b"

[http.routers.pinned]
rule = "PathPrefix(`/`)"
priority = 1
service = "c"

[http.routers.forced]
rule = "Host(`app.test`) && Path(`/api/special`)"
priority = 1000
service = "c"
{}{}{}"#,
        lb("a", &a.url()),
        lb("b", &b.url()),
        lb("c", &c.url())
    )
}

/// Precedence: the longer rule wins (host case and port ignored), set priorities put
/// `/api/special` first and the catch-all last, which takes the other hosts.
async fn the_longest_rule_wins_unless_a_priority_is_set(client: &Client, addr: SocketAddr) {
    let cases = [
        ("app.test", "/", "a"),
        ("APP.test", "/x", "a"),
        ("app.test:8080", "/", "a"),
        ("app.test", "/api/v1", "b"),
        ("app.test", "/api/special", "c"),
        ("other.test", "/", "c"),
    ];
    for (host, path, want) in cases {
        let r = client.get(addr, host, path).await;
        assert_eq!(r.status, 200, "{host}{path}: {r:?}");
        assert_eq!(r.backend(), want, "{host}{path}");
    }
}

/// Headers the backend sees: Host kept, an untrusted X-Forwarded-For replaced, the
/// X-Forwarded-* and X-Real-IP set, and the headers named in Connection dropped.
async fn the_backend_sees_forwarded_headers_and_no_hop_by_hop_ones(
    client: &Client,
    addr: SocketAddr,
) {
    let r = client
        .request(
            addr,
            "GET",
            "app.test",
            "/",
            &[
                ("x-forwarded-for", "6.6.6.6"),
                ("connection", "keep-alive, x-drop"),
                ("x-drop", "1"),
            ],
        )
        .await;
    let body = r.body.to_ascii_lowercase();
    assert!(body.contains("\nhost: app.test\n"), "{body}");
    assert!(
        body.contains("\nx-forwarded-for: 127.0.0.1\n"),
        "untrusted XFF must be replaced: {body}"
    );
    assert!(body.contains("\nx-forwarded-proto: http\n"), "{body}");
    assert!(body.contains("\nx-forwarded-host: app.test\n"), "{body}");
    assert!(body.contains("\nx-forwarded-port: 80\n"), "{body}");
    assert!(body.contains("\nx-real-ip: 127.0.0.1\n"), "{body}");
    assert!(
        !body.contains("x-drop"),
        "hop-by-hop header forwarded: {body}"
    );
}

/// No route (the catch-all removed by a reload): Traefik's 404 text.
async fn without_a_route_the_answer_is_traefiks_404(
    boma: &Boma,
    client: &Client,
    addr: SocketAddr,
    a: &Backend,
) {
    let dynamic_only_host = format!(
        "[http.routers.h]\nrule = \"Host(`only.test`)\"\nservice = \"a\"\n{}",
        lb("a", &a.url())
    );
    boma.write_dynamic(&dynamic_only_host);
    let r = eventually(Duration::from_secs(10), || async {
        let r = client.get(addr, "nothing.test", "/").await;
        (r.status == 404).then_some(r)
    })
    .await
    .expect("catch-all route never went away");
    assert_eq!(r.body, "404 page not found\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_reload_valid_applies_invalid_keeps_last_good() {
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    let v1 = format!(
        "[http.routers.r]\nrule = \"Host(`reload.test`)\"\nservice = \"a\"\n{}",
        lb("a", &a.url())
    );
    let boma = Boma::start(BASIC_STATIC, Some(&v1));
    let client = Client::new();
    let addr = boma.addr("web");
    boma.routed(&client, "reload.test", "/").await;
    assert_eq!(client.get(addr, "reload.test", "/").await.backend(), "a");

    // A valid change moves the route to b and adds a new router.
    let v2 = format!(
        "[http.routers.r]\nrule = \"Host(`reload.test`)\"\nservice = \"b\"\n[http.routers.n]\nrule = \"Host(`new.test`)\"\nservice = \"b\"\n{}",
        lb("b", &b.url())
    );
    boma.write_dynamic(&v2);
    eventually(Duration::from_secs(10), || async {
        (client.get(addr, "reload.test", "/").await.backend() == "b").then_some(())
    })
    .await
    .expect("valid reload not applied");
    assert_eq!(client.get(addr, "new.test", "/").await.backend(), "b");

    // An invalid file (syntax error) keeps v2 serving; the problem is logged with its position.
    boma.write_dynamic("[http.routers.r]\nrule = \"Host(`reload.test`)\nservice = \"a\"\n");
    eventually(Duration::from_secs(10), || async {
        boma.stderr().contains("dynamic.toml:").then_some(())
    })
    .await
    .unwrap_or_else(|| panic!("no positioned problem logged:\n{}", boma.stderr()));
    for _ in 0..5 {
        assert_eq!(client.get(addr, "reload.test", "/").await.backend(), "b");
        assert_eq!(client.get(addr, "new.test", "/").await.backend(), "b");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A file that parses but references a missing service disables only that router.
    let v3 = format!(
        "[http.routers.r]\nrule = \"Host(`reload.test`)\"\nservice = \"a\"\n[http.routers.broken]\nrule = \"Host(`broken.test`)\"\nservice = \"missing\"\n{}",
        lb("a", &a.url())
    );
    boma.write_dynamic(&v3);
    eventually(Duration::from_secs(10), || async {
        (client.get(addr, "reload.test", "/").await.backend() == "a").then_some(())
    })
    .await
    .expect("reload after an invalid file not applied");
    assert_eq!(client.get(addr, "broken.test", "/").await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn middlewares_and_entrypoint_redirect() {
    let a = Backend::start("a").await;
    let static_toml = r#"
[entryPoints.web]
address = "127.0.0.1:0"

[entryPoints.plain]
address = "127.0.0.1:0"
[entryPoints.plain.http.redirections.entryPoint]
to = "web"
scheme = "http"

[providers.file]
filename = "{dir}/dynamic.toml"
"#;
    let dynamic = format!(
        r#"
[http.routers.r]
rule = "Host(`mw.test`)"
service = "a"
middlewares = ["strip", "hdr"]
entryPoints = ["web"]

[http.middlewares.strip.stripPrefix]
prefixes = ["/app"]

[http.middlewares.hdr.headers.customRequestHeaders]
X-Added = "yes"
[http.middlewares.hdr.headers.customResponseHeaders]
X-Resp = "done"
{}"#,
        lb("a", &a.url())
    );
    let boma = Boma::start(static_toml, Some(&dynamic));
    let client = Client::new();
    boma.routed(&client, "mw.test", "/app/x").await;
    let r = client.get(boma.addr("web"), "mw.test", "/app/x?q=1").await;
    assert_eq!(r.status, 200);
    let body = r.body.to_ascii_lowercase();
    assert!(body.contains("get /x?q=1 "), "prefix not stripped: {body}");
    assert!(body.contains("\nx-added: yes\n"), "{body}");
    assert!(body.contains("\nx-forwarded-prefix: /app\n"), "{body}");
    assert_eq!(
        r.headers.get("x-resp").map(|v| v.to_str().unwrap()),
        Some("done")
    );

    // The redirecting entrypoint sends everything to `web`'s port.
    let r = client.get(boma.addr("plain"), "mw.test", "/app/x").await;
    assert!(r.status == 301 || r.status == 308, "{r:?}");
    let loc = r.headers.get("location").unwrap().to_str().unwrap();
    assert_eq!(
        loc,
        format!("http://mw.test:{}/app/x", boma.addr("web").port())
    );
}
