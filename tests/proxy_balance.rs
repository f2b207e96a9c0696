//! Balancing through the real binary: exact weighted distribution, weighted services (canary),
//! an active health check removing and restoring a server, retry past a dead server, passive
//! marking, and the error statuses Traefik uses when no server can answer.

mod support;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use support::{BASIC_STATIC, Backend, Boma, Client, eventually};

async fn count(
    client: &Client,
    addr: std::net::SocketAddr,
    host: &str,
    n: usize,
) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for _ in 0..n {
        let r = client.get(addr, host, "/").await;
        assert_eq!(r.status, 200, "{r:?}");
        *counts.entry(r.backend().to_string()).or_insert(0) += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_servers_get_exact_shares() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let c = Backend::start("c").await;
    let dynamic = format!(
        r#"
[http.routers.r]
rule = "Host(`w.test`)"
service = "s"

[http.services.s.loadBalancer]
[[http.services.s.loadBalancer.servers]]
url = "{}"
weight = 5
[[http.services.s.loadBalancer.servers]]
url = "{}"
weight = 2
[[http.services.s.loadBalancer.servers]]
url = "{}"
weight = 1
"#,
        a.url(),
        b.url(),
        c.url()
    );
    let boma = Boma::start(BASIC_STATIC, Some(&dynamic));
    let client = Client::new();
    let addr = boma.addr("web");
    boma.routed(&client, "w.test", "/").await;
    // The warm-up request above moved the round robin by one; 8 full rounds from any starting
    // point still give exact shares over a multiple of the weight sum.
    let counts = count(&client, addr, "w.test", 8 * 8).await;
    assert_eq!(counts.get("a"), Some(&40), "{counts:?}");
    assert_eq!(counts.get("b"), Some(&16), "{counts:?}");
    assert_eq!(counts.get("c"), Some(&8), "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_service_canary() {
    let stable = Backend::start("stable").await;
    let canary = Backend::start("canary").await;
    let dynamic = format!(
        r#"
[http.routers.r]
rule = "Host(`canary.test`)"
service = "app"

[http.services.app.weighted]
[[http.services.app.weighted.services]]
name = "app-stable"
weight = 9
[[http.services.app.weighted.services]]
name = "app-canary"
weight = 1

[http.services.app-stable.loadBalancer]
[[http.services.app-stable.loadBalancer.servers]]
url = "{}"

[http.services.app-canary.loadBalancer]
[[http.services.app-canary.loadBalancer.servers]]
url = "{}"
"#,
        stable.url(),
        canary.url()
    );
    let boma = Boma::start(BASIC_STATIC, Some(&dynamic));
    let client = Client::new();
    let addr = boma.addr("web");
    boma.routed(&client, "canary.test", "/").await;
    let counts = count(&client, addr, "canary.test", 100).await;
    assert_eq!(counts.get("stable"), Some(&90), "{counts:?}");
    assert_eq!(counts.get("canary"), Some(&10), "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_check_removes_and_restores_a_server() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let dynamic = format!(
        r#"
[http.routers.r]
rule = "Host(`hc.test`)"
service = "s"

[http.services.s.loadBalancer]
[[http.services.s.loadBalancer.servers]]
url = "{}"
[[http.services.s.loadBalancer.servers]]
url = "{}"
[http.services.s.loadBalancer.healthCheck]
path = "/health"
interval = "100ms"
timeout = "1s"
"#,
        a.url(),
        b.url()
    );
    let boma = Boma::start(BASIC_STATIC, Some(&dynamic));
    let client = Client::new();
    let addr = boma.addr("web");
    boma.routed(&client, "hc.test", "/").await;

    b.healthy.store(false, Ordering::SeqCst);
    // Once the checker has seen b fail, every request lands on a.
    eventually(Duration::from_secs(10), || async {
        let c = count(&client, addr, "hc.test", 6).await;
        (c.get("a") == Some(&6)).then_some(())
    })
    .await
    .expect("unhealthy server b kept receiving requests");
    let before = b.hits.load(Ordering::SeqCst);
    let c = count(&client, addr, "hc.test", 20).await;
    assert_eq!(c.get("a"), Some(&20));
    assert_eq!(
        b.hits.load(Ordering::SeqCst),
        before,
        "b got traffic while unhealthy"
    );

    b.healthy.store(true, Ordering::SeqCst);
    eventually(Duration::from_secs(10), || async {
        let c = count(&client, addr, "hc.test", 4).await;
        (c.get("b") == Some(&2)).then_some(())
    })
    .await
    .expect("server b never came back after turning healthy");

    // Both down: Traefik answers 503.
    a.healthy.store(false, Ordering::SeqCst);
    b.healthy.store(false, Ordering::SeqCst);
    let r = eventually(Duration::from_secs(10), || async {
        let r = client.get(addr, "hc.test", "/").await;
        (r.status == 503).then_some(r)
    })
    .await
    .expect("no 503 with every server unhealthy");
    assert_eq!(r.status, 503);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_goes_past_a_dead_server() {
    let alive = Backend::start("alive").await;
    let dead = Backend::start("dead").await;
    let dead_url = dead.url();
    dead.kill();
    drop(dead);
    let dynamic = format!(
        r#"
[http.routers.r]
rule = "Host(`retry.test`)"
service = "s"
middlewares = ["retry"]

[http.routers.noretry]
rule = "Host(`noretry.test`)"
service = "only-dead"

[http.middlewares.retry.retry]
attempts = 3

[http.services.s.loadBalancer]
[[http.services.s.loadBalancer.servers]]
url = "{dead_url}"
[[http.services.s.loadBalancer.servers]]
url = "{}"

[http.services.only-dead.loadBalancer]
[[http.services.only-dead.loadBalancer.servers]]
url = "{dead_url}"
"#,
        alive.url()
    );
    let boma = Boma::start(BASIC_STATIC, Some(&dynamic));
    let client = Client::new();
    let addr = boma.addr("web");
    boma.routed(&client, "noretry.test", "/").await;
    // Every request succeeds although half the picks hit the dead server first.
    for _ in 0..10 {
        let r = client.get(addr, "retry.test", "/").await;
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.backend(), "alive");
    }
    // A service whose only server refuses connections: 502 Bad Gateway, as Traefik.
    let r = client.get(addr, "noretry.test", "/").await;
    assert_eq!(r.status, 502, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_cookie_pins_a_client() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let dynamic = format!(
        r#"
[http.routers.r]
rule = "Host(`sticky.test`)"
service = "s"

[http.services.s.loadBalancer]
[http.services.s.loadBalancer.sticky.cookie]
name = "pin"
httpOnly = true
[[http.services.s.loadBalancer.servers]]
url = "{}"
[[http.services.s.loadBalancer.servers]]
url = "{}"
"#,
        a.url(),
        b.url()
    );
    let boma = Boma::start(BASIC_STATIC, Some(&dynamic));
    let client = Client::new();
    let addr = boma.addr("web");
    let first = eventually(Duration::from_secs(10), || async {
        let r = client.get(addr, "sticky.test", "/").await;
        (r.status == 200).then_some(r)
    })
    .await
    .expect("route never appeared");
    let cookie = first
        .headers
        .get("set-cookie")
        .expect("no sticky cookie set")
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        cookie.starts_with("pin=") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_string();
    for _ in 0..10 {
        let r = client
            .request(addr, "GET", "sticky.test", "/", &[("cookie", &pair)])
            .await;
        assert_eq!(r.backend(), first.backend());
        assert!(r.headers.get("set-cookie").is_none());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_timeout_answers_504() {
    // A listener that never accepts, with its backlog filled: further SYNs are dropped, so a
    // connection attempt hangs until boma's connect timeout (a black hole on loopback).
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let hole = socket.listen(0).unwrap();
    let hole_addr = hole.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..8 {
        let s = tokio::net::TcpSocket::new_v4().unwrap();
        if let Ok(Ok(c)) =
            tokio::time::timeout(Duration::from_millis(300), s.connect(hole_addr)).await
        {
            fillers.push(c);
        }
    }
    let static_toml = "[entryPoints.web]\naddress = \"127.0.0.1:0\"\n[providers.file]\nfilename = \"{dir}/dynamic.toml\"\n[limits]\nupstream_connect_timeout = \"1s\"\n";
    let dynamic = format!(
        "[http.routers.r]\nrule = \"Host(`hole.test`)\"\nservice = \"s\"\n[http.services.s.loadBalancer]\n[[http.services.s.loadBalancer.servers]]\nurl = \"http://{hole_addr}\"\n"
    );
    let boma = Boma::start(static_toml, Some(&dynamic));
    let client = Client::new();
    let addr = boma.addr("web");
    let r = eventually(Duration::from_secs(10), || async {
        let r = client.get(addr, "hole.test", "/").await;
        (r.status != 404).then_some(r)
    })
    .await
    .expect("route never appeared");
    assert_eq!(r.status, 504, "{r:?}\n{}", boma.stderr());
    drop(hole);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_service_uses_the_fallback_while_main_is_down() {
    let main = Backend::start("main").await;
    let spare = Backend::start("spare").await;
    let dynamic = format!(
        r#"
[http.routers.r]
rule = "Host(`fo.test`)"
service = "app"

[http.services.app.failover]
service = "primary"
fallback = "backup"

[http.services.primary.loadBalancer]
[[http.services.primary.loadBalancer.servers]]
url = "{}"
[http.services.primary.loadBalancer.healthCheck]
path = "/health"
interval = "100ms"

[http.services.backup.loadBalancer]
[[http.services.backup.loadBalancer.servers]]
url = "{}"
"#,
        main.url(),
        spare.url()
    );
    let boma = Boma::start(BASIC_STATIC, Some(&dynamic));
    let client = Client::new();
    let addr = boma.addr("web");
    assert_eq!(boma.routed(&client, "fo.test", "/").await.backend(), "main");
    main.healthy.store(false, Ordering::SeqCst);
    eventually(Duration::from_secs(10), || async {
        (client.get(addr, "fo.test", "/").await.backend() == "spare").then_some(())
    })
    .await
    .expect("never failed over");
    main.healthy.store(true, Ordering::SeqCst);
    eventually(Duration::from_secs(10), || async {
        (client.get(addr, "fo.test", "/").await.backend() == "main").then_some(())
    })
    .await
    .expect("never came back to the main service");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_with_weight_0_is_never_the_fallback() {
    let spare = Backend::start("spare").await;
    let dead = Backend::start("dead").await;
    let dead_url = dead.url();
    dead.kill();
    drop(dead);
    // `spare` is listed first with weight 0 (a drained server): with the only weighted server
    // passively marked down, requests must fail rather than reach it.
    let dynamic = format!(
        r#"
[http.routers.r]
rule = "Host(`drained.test`)"
service = "s"

[http.services.s.loadBalancer]
[[http.services.s.loadBalancer.servers]]
url = "{}"
weight = 0
[[http.services.s.loadBalancer.servers]]
url = "{dead_url}"
"#,
        spare.url()
    );
    let boma = Boma::start(BASIC_STATIC, Some(&dynamic));
    let client = Client::new();
    let addr = boma.addr("web");
    boma.routed(&client, "drained.test", "/").await;
    for _ in 0..5 {
        let r = client.get(addr, "drained.test", "/").await;
        assert_eq!(r.status, 502, "{r:?}");
    }
    assert_eq!(spare.hits.load(Ordering::SeqCst), 0, "weight 0 got traffic");
}
