//! Test support: real peers on 127.0.0.1 ephemeral ports. `Backend` is a hyper server that says
//! who it is and can be told to fail, be slow, stream or echo; `Boma` runs the real `boma` binary
//! on a config written to a temp dir and reads its listening addresses from its start-up lines;
//! `Client` sends real HTTP requests.
#![allow(dead_code)]

pub mod tls;

use std::convert::Infallible;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

type BoxBody =
    http_body_util::combinators::BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// A real HTTP backend.
pub struct Backend {
    pub name: String,
    pub addr: SocketAddr,
    pub healthy: Arc<AtomicBool>,
    pub hits: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Backend {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stop serving (the port then refuses connections).
    pub fn kill(&self) {
        self.task.abort();
    }

    pub async fn start(name: &str) -> Backend {
        Self::start_on(name, "127.0.0.1:0").await
    }

    pub async fn start_on(name: &str, addr: &str) -> Backend {
        let listener = TcpListener::bind(addr).await.expect("bind backend");
        let addr = listener.local_addr().unwrap();
        let healthy = Arc::new(AtomicBool::new(true));
        let hits = Arc::new(AtomicU64::new(0));
        let (n, h, c) = (name.to_string(), healthy.clone(), hits.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (n, h, c) = (n.clone(), h.clone(), c.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let (n, h, c) = (n.clone(), h.clone(), c.clone());
                        async move { Ok::<_, Infallible>(answer(&n, &h, &c, req).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Backend {
            name: name.to_string(),
            addr,
            healthy,
            hits,
            task,
        }
    }
}

fn boxed(b: impl Into<Bytes>) -> BoxBody {
    Full::new(b.into()).map_err(|n| match n {}).boxed()
}

fn query_param(req: &Request<Incoming>, key: &str) -> Option<u64> {
    req.uri().query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| v.parse().ok()).flatten()
    })
}

/// The backend's answer to `req`: `/health` says whether it is healthy; every other path
/// counts as a hit, waits `sleep_ms` when asked, then is answered by its route.
async fn answer(
    name: &str,
    healthy: &AtomicBool,
    hits: &AtomicU64,
    mut req: Request<Incoming>,
) -> Response<BoxBody> {
    let path = req.uri().path().to_string();
    if path == "/health" {
        return health(healthy);
    }
    hits.fetch_add(1, Ordering::SeqCst);
    if let Some(ms) = query_param(&req, "sleep_ms") {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    match path.as_str() {
        "/ws" => websocket(&mut req),
        "/drip" => drip(&req),
        "/stream" => stream(&req),
        "/sink" => sink(name, req).await,
        p if p.starts_with("/bytes") => bytes_of_text(p, &req),
        "/status" => status(name, &req),
        _ => echo(name, &req),
    }
}

/// `/health`: `ok`, or `down` with 503 once told to fail.
fn health(healthy: &AtomicBool) -> Response<BoxBody> {
    let ok = healthy.load(Ordering::SeqCst);
    let mut r = Response::new(boxed(if ok { "ok" } else { "down" }));
    if !ok {
        *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    }
    r
}

/// `/ws`: the WebSocket handshake's 101, then an echo of every text and binary message until
/// the client closes; 400 without a key.
fn websocket(req: &mut Request<Incoming>) -> Response<BoxBody> {
    let Some(key) = req.headers().get("sec-websocket-key").cloned() else {
        return Response::builder()
            .status(400)
            .body(boxed("no key"))
            .unwrap();
    };
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let on_upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        if let Ok(upgraded) = on_upgrade.await {
            use futures_util::{SinkExt, StreamExt};
            let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
                TokioIo::new(upgraded),
                tokio_tungstenite::tungstenite::protocol::Role::Server,
                None,
            )
            .await;
            let (mut tx, mut rx) = ws.split();
            while let Some(Ok(msg)) = rx.next().await {
                if msg.is_text() || msg.is_binary() {
                    if tx.send(msg).await.is_err() {
                        break;
                    }
                } else if msg.is_close() {
                    break;
                }
            }
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("upgrade", "websocket")
        .header("connection", "Upgrade")
        .header("sec-websocket-accept", accept)
        .body(boxed(""))
        .unwrap()
}

/// `/drip`: `n` chunks of "x\n" (default 2), the first at once, then one every `every_ms`
/// (default 30 s): an answer that stays open with nothing to send.
fn drip(req: &Request<Incoming>) -> Response<BoxBody> {
    let n = query_param(req, "n").unwrap_or(2);
    let every = Duration::from_millis(query_param(req, "every_ms").unwrap_or(30_000));
    let stream = futures_util::stream::unfold(0u64, move |sent| async move {
        if sent == n {
            return None;
        }
        if sent > 0 {
            tokio::time::sleep(every).await;
        }
        let chunk = Frame::data(Bytes::from_static(b"x\n"));
        Some((
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(chunk),
            sent + 1,
        ))
    });
    Response::new(BodyExt::boxed(StreamBody::new(stream)))
}

/// `/stream`: `n` bytes in 64 KiB chunks, generated lazily.
fn stream(req: &Request<Incoming>) -> Response<BoxBody> {
    let total = query_param(req, "n").unwrap_or(0);
    let stream = futures_util::stream::unfold(total, |left| async move {
        if left == 0 {
            return None;
        }
        let n = left.min(64 * 1024);
        let chunk = Bytes::from(vec![b'x'; n as usize]);
        Some((
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Frame::data(chunk)),
            left - n,
        ))
    });
    Response::new(BodyExt::boxed(StreamBody::new(stream)))
}

/// `/sink`: reads the whole body and says how many bytes it received; 400 with the error when
/// the body fails.
async fn sink(name: &str, req: Request<Incoming>) -> Response<BoxBody> {
    let mut body = req.into_body();
    let mut n = 0u64;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => n += f.data_ref().map_or(0, |d| d.len() as u64),
            Err(e) => {
                return Response::builder()
                    .status(400)
                    .body(boxed(e.to_string()))
                    .unwrap();
            }
        }
    }
    Response::new(boxed(format!("{name} received {n}")))
}

/// `/bytes...` (path `p`): `n` bytes of text (default 4096); `/bytes/png` says image/png,
/// `/bytes/encoded` says it is br-encoded already, `/bytes/stream` sends it without a length.
fn bytes_of_text(p: &str, req: &Request<Incoming>) -> Response<BoxBody> {
    let n = query_param(req, "n").unwrap_or(4096) as usize;
    let text: Vec<u8> = b"boma compresses this line. "
        .iter()
        .copied()
        .cycle()
        .take(n)
        .collect();
    let kind = match p {
        "/bytes/png" => "image/png",
        _ => "text/plain; charset=utf-8",
    };
    let mut r = Response::builder().header("content-type", kind);
    if p == "/bytes/encoded" {
        r = r.header("content-encoding", "br");
    }
    let body = if p == "/bytes/stream" {
        let chunks: Vec<Result<Frame<Bytes>, Box<dyn std::error::Error + Send + Sync>>> = (text
            .chunks(1000)
            .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c)))))
        .collect();
        BodyExt::boxed(StreamBody::new(futures_util::stream::iter(chunks)))
    } else {
        boxed(text)
    };
    r.body(body).unwrap()
}

/// `/status`: the status `code` asks for (default 200), with the backend's name.
fn status(name: &str, req: &Request<Incoming>) -> Response<BoxBody> {
    let code = query_param(req, "code").unwrap_or(200) as u16;
    Response::builder()
        .status(code)
        .body(boxed(name.to_string()))
        .unwrap()
}

/// Any other path: the backend's name, the request line and its headers, and `x-backend`.
fn echo(name: &str, req: &Request<Incoming>) -> Response<BoxBody> {
    let mut text = format!(
        "{name}\n{} {} {:?}\n",
        req.method(),
        req.uri(),
        req.version()
    );
    for (k, v) in req.headers() {
        text.push_str(&format!("{}: {}\n", k, v.to_str().unwrap_or("?")));
    }
    Response::builder()
        .header("x-backend", name)
        .body(boxed(text))
        .unwrap()
}

/// The real boma binary, running on a config in a temp dir.
pub struct Boma {
    child: Child,
    pub dir: tempfile::TempDir,
    pub listeners: Vec<(String, SocketAddr)>,
    pub stderr_log: PathBuf,
}

impl Drop for Boma {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Boma {
    /// Start boma with `static_toml` (`{dir}` is replaced by the temp dir) and, when given, a
    /// dynamic file written to `{dir}/dynamic.toml` first.
    pub fn start(static_toml: &str, dynamic: Option<&str>) -> Boma {
        Self::start_in(None, static_toml, dynamic)
    }

    /// [`Boma::start`] inside the network namespace `netns` (`ip netns exec`) when given.
    pub fn start_in(netns: Option<&str>, static_toml: &str, dynamic: Option<&str>) -> Boma {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().display().to_string();
        if let Some(dynamic) = dynamic {
            std::fs::write(dir.path().join("dynamic.toml"), dynamic).unwrap();
        }
        let cfg = dir.path().join("boma.toml");
        std::fs::write(&cfg, static_toml.replace("{dir}", &d)).unwrap();
        let stderr_log = dir.path().join("stderr.log");
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, env!("CARGO_BIN_EXE_boma")]);
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_boma")),
        };
        let mut child = cmd
            .arg("run")
            .arg("--config")
            .arg(&cfg)
            .env("BOMA_LOG", "boma=debug")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_log).unwrap())
            .spawn()
            .expect("spawn boma");
        let stdout = child.stdout.take().unwrap();
        let mut listeners = Vec::new();
        let mut reader = BufReader::new(stdout);
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut line = String::new();
        loop {
            line.clear();
            let n = reader.read_line(&mut line).unwrap_or(0);
            if n == 0 || Instant::now() > deadline {
                let log = std::fs::read_to_string(&stderr_log).unwrap_or_default();
                panic!("boma did not become ready; stderr:\n{log}");
            }
            let t = line.trim();
            if t == "ready" {
                break;
            }
            let parts: Vec<&str> = t.split_whitespace().collect();
            if parts.len() == 3 && parts[0] == "proxy" {
                let url = parts[2];
                let addr = (url
                    .strip_prefix("http://")
                    .or_else(|| url.strip_prefix("https://")))
                .unwrap_or_else(|| panic!("proxy line `{t}`"));
                listeners.push((parts[1].to_string(), addr.parse().unwrap()));
            }
            if let (3, Some(addr)) = (
                parts.len(),
                parts.get(2).and_then(|a| a.strip_prefix("udp+tcp://")),
            ) {
                listeners.push((parts[0].to_string(), addr.parse().unwrap()));
            }
        }
        // Keep draining stdout so boma never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sink = String::new();
            while reader.read_line(&mut sink).unwrap_or(0) > 0 {
                sink.clear();
            }
        });
        Boma {
            child,
            dir,
            listeners,
            stderr_log,
        }
    }

    pub fn addr(&self, entrypoint: &str) -> SocketAddr {
        self.listeners
            .iter()
            .find(|(n, _)| n == entrypoint)
            .map(|(_, a)| *a)
            .unwrap_or_else(|| panic!("no entrypoint {entrypoint} in {:?}", self.listeners))
    }

    /// Wait (bounded) until a request for `host` + `path` is routed, i.e. answered with anything
    /// but 404, and return that answer.
    pub async fn routed(&self, client: &Client, host: &str, path: &str) -> Resp {
        let addr = self.addr("web");
        eventually(Duration::from_secs(10), || async {
            let r = client.get(addr, host, path).await;
            (r.status != 404).then_some(r)
        })
        .await
        .unwrap_or_else(|| {
            panic!(
                "route {host}{path} never appeared; boma log:\n{}",
                self.stderr()
            )
        })
    }

    pub fn write_dynamic(&self, text: &str) {
        // Write then rename, as an editor does, so boma never reads half a file.
        let tmp = self.dir.path().join("dynamic.toml.tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, self.dir.path().join("dynamic.toml")).unwrap();
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Send SIGTERM and wait for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        self.child.wait().expect("wait boma")
    }

    /// Resident set size in KiB, from /proc.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }
}

/// A response, read whole.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Resp {
    /// The backend name (first body line) for responses from `Backend`.
    pub fn backend(&self) -> &str {
        self.body.lines().next().unwrap_or("")
    }
}

/// An HTTP/1.1 client with keep-alive.
#[derive(Clone)]
pub struct Client {
    inner: HyperClient<HttpConnector, Full<Bytes>>,
}

impl Default for Client {
    fn default() -> Self {
        Self::new()
    }
}

impl Client {
    pub fn new() -> Self {
        Client {
            inner: HyperClient::builder(TokioExecutor::new()).build(HttpConnector::new()),
        }
    }

    pub async fn send(&self, req: Request<Full<Bytes>>) -> Resp {
        let resp = tokio::time::timeout(Duration::from_secs(20), self.inner.request(req))
            .await
            .expect("request timed out")
            .expect("request failed");
        let (parts, body) = resp.into_parts();
        let bytes = body.collect().await.expect("body").to_bytes();
        Resp {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    pub async fn get(&self, addr: SocketAddr, host: &str, path: &str) -> Resp {
        self.request(addr, "GET", host, path, &[]).await
    }

    pub async fn request(
        &self,
        addr: SocketAddr,
        method: &str,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut b = Request::builder()
            .method(method)
            .uri(format!("http://{addr}{path}"))
            .header("host", host);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        self.send(b.body(Full::new(Bytes::new())).unwrap()).await
    }

    /// The record of entry point `name` in boma's `/api/entrypoints` at `api` (its
    /// `connections` counters among them); `None` when the API does not answer with it.
    pub async fn api_entrypoint(&self, api: SocketAddr, name: &str) -> Option<serde_json::Value> {
        let r = self.get(api, "x", "/api/entrypoints").await;
        let all: serde_json::Value = serde_json::from_str(&r.body).ok()?;
        all.as_array()?.iter().find(|e| e["name"] == name).cloned()
    }
}

/// Poll `f` until it returns Some or `limit` passes.
pub async fn eventually<T, F, Fut>(limit: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A static config with one entrypoint `web` on an ephemeral port and the file provider on
/// `{dir}/dynamic.toml`.
pub const BASIC_STATIC: &str = r#"
[entryPoints.web]
address = "127.0.0.1:0"

[providers.file]
filename = "{dir}/dynamic.toml"
watch = true

[log]
level = "debug"
"#;

impl Boma {
    /// The DNS server's address (from the `dns  dns  udp+tcp://ADDR` start-up line).
    pub fn dns_addr(&self) -> SocketAddr {
        self.addr("dns")
    }
}
