//! Operating the proxy: the access log (common and JSON formats), the connection limit, and the
//! API and dashboard on the `traefik` entrypoint.

mod support;

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use support::{Backend, Boma, Client, eventually};

fn dynamic(b: &Backend) -> String {
    format!(
        "[http.routers.r]\nrule = \"Host(`log.test`)\"\nservice = \"s\"\n[http.services.s.loadBalancer]\n[[http.services.s.loadBalancer.servers]]\nurl = \"{}\"\n",
        b.url()
    )
}

async fn ready(client: &Client, boma: &Boma) {
    boma.routed(client, "log.test", "/").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_common_and_json() {
    let backend = Backend::start("logged").await;
    for format in ["common", "json", "filtered"] {
        let extra = if format == "filtered" {
            "format = \"json\"\n[accessLog.filters]\nstatusCodes = [\"400-499\"]\n"
        } else if format == "json" {
            "format = \"json\"\n"
        } else {
            "format = \"common\"\n"
        };
        let static_toml = format!(
            "[entryPoints.web]\naddress = \"127.0.0.1:0\"\n[providers.file]\nfilename = \"{{dir}}/dynamic.toml\"\n[accessLog]\nfilePath = \"{{dir}}/access.log\"\n{extra}"
        );
        let boma = Boma::start(&static_toml, Some(&dynamic(&backend)));
        let client = Client::new();
        ready(&client, &boma).await;
        let r = client
            .request(
                boma.addr("web"),
                "GET",
                "log.test",
                "/logged/path?x=1",
                &[("user-agent", "boma-test/1")],
            )
            .await;
        assert_eq!(r.status, 200);
        let _ = client
            .get(boma.addr("web"), "nobody.test", "/missing")
            .await;
        let log_path = boma.dir.path().join("access.log");
        if format == "filtered" {
            // Only 4xx lines: the 404 arrives, the 200 before it on the same connection never does.
            let text = eventually(Duration::from_secs(10), || async {
                let t = std::fs::read_to_string(&log_path).unwrap_or_default();
                t.contains("/missing").then_some(t)
            })
            .await
            .expect("filtered access log never got the 404 line");
            assert!(!text.contains("/logged/path"), "{text}");
            continue;
        }
        let text = eventually(Duration::from_secs(10), || async {
            let t = std::fs::read_to_string(&log_path).unwrap_or_default();
            (t.contains("/logged/path?x=1") && t.contains("/missing")).then_some(t)
        })
        .await
        .unwrap_or_else(|| panic!("{format}: access log never got the lines"));
        let line = text.lines().find(|l| l.contains("/logged/path")).unwrap();
        let missing = text.lines().find(|l| l.contains("/missing")).unwrap();
        if format == "common" {
            assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
            assert!(
                line.contains("\"GET /logged/path?x=1 HTTP/1.1\" 200 "),
                "{line}"
            );
            assert!(line.contains("\"boma-test/1\""), "{line}");
            assert!(line.contains("\"r@file\""), "{line}");
            assert!(line.contains(&format!("\"{}\"", backend.url())), "{line}");
            assert!(missing.contains("\" 404 19 "), "{missing}");
        } else {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["DownstreamStatus"], 200);
            assert_eq!(v["RequestPath"], "/logged/path?x=1");
            assert_eq!(v["RouterName"], "r@file");
            assert_eq!(v["RequestUserAgent"], "boma-test/1");
            assert!(v["DownstreamContentSize"].as_u64().unwrap() > 0);
            let m: serde_json::Value = serde_json::from_str(missing).unwrap();
            assert_eq!(m["DownstreamStatus"], 404);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limit_holds_further_clients_back() {
    let backend = Backend::start("limited").await;
    let static_toml = "[entryPoints.web]\naddress = \"127.0.0.1:0\"\n[providers.file]\nfilename = \"{dir}/dynamic.toml\"\n[limits]\nmax_connections = 2\nworkers = 1\n";
    let boma = Boma::start(static_toml, Some(&dynamic(&backend)));
    let addr = boma.addr("web");
    // Let the route appear through connections that are closed again.
    eventually(Duration::from_secs(10), || async {
        let mut s = TcpStream::connect(addr).await.ok()?;
        s.write_all(b"GET / HTTP/1.1\r\nHost: log.test\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.ok()?;
        out.starts_with(b"HTTP/1.1 200").then_some(())
    })
    .await
    .expect("route never appeared");

    // Two kept-alive connections take both slots.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: log.test\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        held.push(s);
    }
    // A third is accepted by the kernel but not served while both are held.
    let mut third = TcpStream::connect(addr).await.unwrap();
    third
        .write_all(b"GET / HTTP/1.1\r\nHost: log.test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let early = tokio::time::timeout(Duration::from_millis(700), third.read_to_end(&mut buf)).await;
    assert!(
        early.is_err() && buf.is_empty(),
        "third connection was served over the limit"
    );
    // Freeing one slot lets it through.
    drop(held.pop());
    tokio::time::timeout(Duration::from_secs(10), third.read_to_end(&mut buf))
        .await
        .expect("third connection never served after a slot freed")
        .unwrap();
    assert!(
        buf.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_and_dashboard() {
    let backend = Backend::start("api").await;
    let static_toml = "[entryPoints.web]\naddress = \"127.0.0.1:0\"\n[entryPoints.traefik]\naddress = \"127.0.0.1:0\"\n[api]\ninsecure = true\n[providers.file]\nfilename = \"{dir}/dynamic.toml\"\n";
    let broken = format!(
        "{}[http.routers.bad]\nrule = \"Hots(`x`)\"\nservice = \"s\"\n",
        dynamic(&backend)
    );
    let boma = Boma::start(static_toml, Some(&broken));
    let client = Client::new();
    ready(&client, &boma).await;
    let api = boma.addr("traefik");
    let routers: serde_json::Value =
        serde_json::from_str(&client.get(api, "gw", "/api/http/routers").await.body).unwrap();
    let names: Vec<&str> = routers
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"r@file") && names.contains(&"bad@file"),
        "{names:?}"
    );
    let bad = routers
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "bad@file")
        .unwrap();
    assert_eq!(bad["status"], "disabled");
    assert!(
        bad["error"][0]
            .as_str()
            .unwrap()
            .contains("unknown matcher"),
        "{bad}"
    );
    let problems: serde_json::Value =
        serde_json::from_str(&client.get(api, "gw", "/api/problems").await.body).unwrap();
    assert!(
        problems
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["source"] == "router bad@file"),
        "{problems}"
    );
    let services: serde_json::Value = serde_json::from_str(
        &client
            .get(api, "gw", "/api/http/services/s@file")
            .await
            .body,
    )
    .unwrap();
    assert_eq!(services["serverStatus"][backend.url()], "UP");
    let page = client.get(api, "gw", "/dashboard/").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<title>boma</title>"));
    let root = client.get(api, "gw", "/").await;
    assert_eq!(root.status, 302);
    // The API is not reachable through the public entrypoint.
    assert_eq!(
        client
            .get(boma.addr("web"), "gw", "/api/http/routers")
            .await
            .status,
        404
    );
}

/// The API and dashboard behind a router of the operator's: without `[admin] users` they answer
/// only how to set them (ping still answers); with users, they ask for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_users_guard_the_api_behind_a_router() {
    let routes = "[http.routers.gw]\nrule = \"Host(`gw`)\"\nservice = \"dashboard@internal\"\n\
                  [http.routers.gw-api]\nrule = \"Host(`gw`) && PathPrefix(`/api`)\"\nservice = \"api@internal\"\n\
                  [http.routers.gw-ping]\nrule = \"Host(`gw`) && Path(`/ping`)\"\nservice = \"ping@internal\"\n";
    let base = "[entryPoints.web]\naddress = \"127.0.0.1:0\"\n[api]\n[providers.file]\nfilename = \"{dir}/dynamic.toml\"\n";
    let client = Client::new();

    let boma = Boma::start(base, Some(routes));
    let web = boma.addr("web");
    let ping = eventually(Duration::from_secs(10), || async {
        let r = client.get(web, "gw", "/ping").await;
        (r.status == 200).then_some(r)
    })
    .await;
    assert!(ping.is_some(), "ping@internal never answered");
    let api = client.get(web, "gw", "/api/version").await;
    assert_eq!(api.status, 403, "{api:?}");
    assert!(api.body.contains("[admin] users"), "{}", api.body);
    let page = client.get(web, "gw", "/dashboard/").await;
    assert_eq!(page.status, 403);
    assert!(
        page.body.contains("[admin]") && page.body.contains("htpasswd"),
        "{}",
        page.body
    );
    drop(boma);

    // {SHA} of "village".
    let with_users =
        format!("{base}[admin]\nusers = [\"admin:{{SHA}}O9w+xoK/u0cUIpJfmnH8Z+bAyjw=\"]\n");
    let boma = Boma::start(&with_users, Some(routes));
    let web = boma.addr("web");
    let asked = eventually(Duration::from_secs(10), || async {
        let r = client.get(web, "gw", "/api/version").await;
        (r.status == 401).then_some(r)
    })
    .await
    .expect("the API asks for credentials");
    assert!(
        asked
            .headers
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("realm=\"boma\"")),
        "{asked:?}"
    );
    let wrong = "admin:town";
    let r = get_as(&client, web, "gw", "/api/version", wrong).await;
    assert_eq!(r.status, 401);
    let right = "admin:village";
    let r = get_as(&client, web, "gw", "/api/version", right).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.contains("\"Codename\":\"boma\""), "{}", r.body);
    let r = get_as(&client, web, "gw", "/dashboard/", right).await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("<title>boma</title>"));
    assert_eq!(client.get(web, "gw", "/ping").await.status, 200);
}

/// basicAuth's bcrypt runs off the event loop: with 50 wrong passwords being checked on a single
/// worker, a request to another route is answered while most of them are still pending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bcrypt_checks_do_not_stall_other_routes() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let backend = Backend::start("open").await;
    let hash = bcrypt::hash("right", 8).expect("bcrypt hash");
    let dynamic = format!(
        "{}[http.routers.locked]\nrule = \"Host(`locked.test`)\"\nservice = \"s\"\nmiddlewares = [\"auth\"]\n[http.middlewares.auth.basicAuth]\nusers = [\"admin:{hash}\"]\n",
        dynamic(&backend)
    );
    let static_toml = "[entryPoints.web]\naddress = \"127.0.0.1:0\"\n[providers.file]\nfilename = \"{dir}/dynamic.toml\"\n[limits]\nworkers = 1\n";
    let boma = Boma::start(static_toml, Some(&dynamic));
    let client = Client::new();
    ready(&client, &boma).await;
    let addr = boma.addr("web");
    let done = Arc::new(AtomicUsize::new(0));
    let mut wrong = Vec::new();
    for i in 0..50 {
        let (client, done) = (client.clone(), Arc::clone(&done));
        wrong.push(tokio::spawn(async move {
            let r = get_as(
                &client,
                addr,
                "locked.test",
                "/",
                &format!("admin:wrong{i}"),
            )
            .await;
            done.fetch_add(1, Ordering::SeqCst);
            r.status
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = client.get(addr, "log.test", "/").await;
    let finished = done.load(Ordering::SeqCst);
    assert_eq!(r.status, 200);
    assert!(
        finished < 25,
        "{finished} of 50 password checks finished before an unrelated request was answered"
    );
    for w in wrong {
        assert_eq!(w.await.unwrap(), 401);
    }
    let right = "admin:right";
    let r = get_as(&client, addr, "locked.test", "/", right).await;
    assert_eq!(r.status, 429, "the source used up its failures: {r:?}");
}

/// GET with `Authorization: Basic` for `user_password` ("user:password").
async fn get_as(
    client: &Client,
    addr: std::net::SocketAddr,
    host: &str,
    path: &str,
    user_password: &str,
) -> support::Resp {
    let auth = format!("Basic {}", b64(user_password));
    client
        .request(addr, "GET", host, path, &[("authorization", &auth)])
        .await
}

fn b64(s: &str) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in s.as_bytes().chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (u32::from(b) << (16 - 8 * i)));
        for i in 0..4 {
            out.push(if i <= chunk.len() {
                T[((n >> (18 - 6 * i)) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    out
}
