//! Abuse and faults through the real binary, the pass/fail part of what `docs/benchmarks.md`
//! measures: a thousand slowloris connections from one address do not keep another client out
//! (and the refused ones are counted at `/api/entrypoints`), and a backend killed under load
//! costs no idempotent request once it is passively marked.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};

use support::{Backend, Boma, Client};

fn routes(backends: &[&Backend]) -> String {
    let mut s = String::from(
        "[http.routers.r]\nrule = \"Host(`abuse.test`)\"\nservice = \"s\"\nmiddlewares = [\"retry\"]\n[http.middlewares.retry.retry]\nattempts = 2\n[http.services.s.loadBalancer]\n",
    );
    for b in backends {
        s.push_str(&format!(
            "[[http.services.s.loadBalancer.servers]]\nurl = \"{}\"\n",
            b.url()
        ));
    }
    s
}

/// A connection from `from` that sends half a request head and then nothing.
async fn slowloris(from: &str, to: SocketAddr) -> Option<TcpStream> {
    let socket = TcpSocket::new_v4().ok()?;
    socket.bind(format!("{from}:0").parse().ok()?).ok()?;
    let mut s = socket.connect(to).await.ok()?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: abuse.test\r\nX-Slow: ")
        .await
        .ok()?;
    Some(s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_slowloris_connections_do_not_keep_others_out() {
    let backend = Backend::start("b").await;
    let static_toml = r#"
[entryPoints.web]
address = "127.0.0.1:0"
[entryPoints.traefik]
address = "127.0.0.1:0"
[api]
insecure = true
[providers.file]
filename = "{dir}/dynamic.toml"
[limits]
max_connections = 2048
max_connections_per_ip = 200
"#;
    let boma = Boma::start(static_toml, Some(&routes(&[&backend])));
    let client = Client::new();
    boma.routed(&client, "abuse.test", "/").await;
    let addr = boma.addr("web");
    let mut held = Vec::new();
    for _ in 0..1000 {
        // From an address of their own: the test's HTTP client keeps a connection from 127.0.0.1.
        if let Some(s) = slowloris("127.0.0.3", addr).await {
            held.push(s);
        }
    }
    assert_eq!(held.len(), 1000, "the test could not open its connections");
    // Another client (another loopback address) is served while they hang.
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut s = socket.connect(addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: abuse.test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let read = tokio::io::AsyncReadExt::read_to_end(&mut s, &mut answer);
    tokio::time::timeout(Duration::from_secs(20), read)
        .await
        .expect("the other client was not answered")
        .unwrap();
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    // The API counts what was refused: 800 of the thousand, once they were all tried.
    let api = boma.addr("traefik");
    let stats = support::eventually(Duration::from_secs(10), || async {
        let web = client.api_entrypoint(api, "web").await?;
        let c = &web["connections"];
        let open = c["open"].as_u64().unwrap_or(0);
        (c["refusedPerIP"] == 800 && open >= 200).then_some(web)
    })
    .await
    .unwrap_or_else(|| panic!("never 800 refused with 200 held:\n{}", boma.stderr()));
    assert_eq!(
        stats["connections"]["accepted"].as_u64().map(|n| n >= 201),
        Some(true)
    );
    drop(held);
}

/// A backend in a process of its own (nginx, single process), so killing it resets its
/// connections as a crashed server's are.
struct Nginx {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Nginx {
    fn start(name: &str) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let d = dir.path().display();
        let conf = format!(
            "daemon off; master_process off; pid {d}/nginx.pid; error_log {d}/error.log;\n\
             events {{ worker_connections 1024; }}\n\
             http {{ access_log off; client_body_temp_path {d}; proxy_temp_path {d};\n\
             fastcgi_temp_path {d}; uwsgi_temp_path {d}; scgi_temp_path {d};\n\
             server {{ listen 127.0.0.1:{port}; keepalive_requests 100000;\n\
             location / {{ add_header X-Backend {name}; return 200 \"{name}\\n\"; }} }} }}\n"
        );
        let path = dir.path().join("nginx.conf");
        std::fs::write(&path, conf).unwrap();
        let child = std::process::Command::new("nginx")
            .arg("-c")
            .arg(&path)
            .spawn()
            .expect("nginx (run make deps)");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Nginx {
            child,
            port,
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A backend killed under load (SIGKILL: its keep-alive connections reset): with `retry`, not
/// one of a thousand requests fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_killed_under_load_fails_no_idempotent_request() {
    let mut a = Nginx::start("a");
    let b = Nginx::start("b");
    let dynamic = format!(
        "[http.routers.r]\nrule = \"Host(`abuse.test`)\"\nservice = \"s\"\nmiddlewares = [\"retry\"]\n[http.middlewares.retry.retry]\nattempts = 2\n[http.services.s.loadBalancer]\n[[http.services.s.loadBalancer.servers]]\nurl = \"{}\"\n[[http.services.s.loadBalancer.servers]]\nurl = \"{}\"\n",
        a.url(),
        b.url()
    );
    let boma = Boma::start(support::BASIC_STATIC, Some(&dynamic));
    let client = Client::new();
    boma.routed(&client, "abuse.test", "/").await;
    let addr = boma.addr("web");
    let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (client, done) = (client.clone(), std::sync::Arc::clone(&done));
        load.push(tokio::spawn(async move {
            let mut failed = Vec::new();
            for _ in 0..250 {
                let r = client.get(addr, "abuse.test", "/").await;
                done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if r.status != 200 {
                    failed.push(r.status);
                }
            }
            failed
        }));
    }
    while done.load(std::sync::atomic::Ordering::SeqCst) < 300 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    a.kill();
    let mut failed = Vec::new();
    for l in load {
        failed.extend(l.await.unwrap());
    }
    assert!(
        failed.is_empty(),
        "{} requests failed: {failed:?}",
        failed.len()
    );
    // The survivor answers alone now.
    let r = client.get(addr, "abuse.test", "/").await;
    assert_eq!((r.status, r.backend()), (200, "b"));
}
