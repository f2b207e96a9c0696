//! Support for the container tests (`tests/docker_*.rs`): a real Docker engine driven with the
//! `docker` CLI, the project's static test server (`testsrv/`, `whoami`) built and put into
//! `FROM scratch` images (no image is ever pulled), and guards that remove every container,
//! network and image a test creates, even when it fails.
//!
//! No engine is a loud failure that says to run `make deps`, never a skipped test.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use crate::support::tls::{TlsFront, issue};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A name no other test (or test run) uses: `bt-<pid>-<n>-<what>`.
pub fn unique(what: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    format!("bt-{}-{n}-{what}", std::process::id())
}

/// Run `docker args...`, returning its output; panics with stderr when it fails.
pub fn docker(args: &[&str]) -> String {
    let out = docker_raw(args);
    if !out.status.success() {
        panic!(
            "docker {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Run `docker args...` and return the raw output (for cleanup, where failure is fine).
pub fn docker_raw(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .unwrap_or_else(|e| panic!("cannot run docker: {e}; run `make deps`"))
}

/// Panic unless an engine answers.
pub fn require_engine() {
    static OK: OnceLock<()> = OnceLock::new();
    OK.get_or_init(|| {
        let out = Command::new("docker")
            .args(["version", "--format", "{{.Server.Version}}"])
            .output();
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => panic!(
                "no Docker engine answers ({}); run `make deps` (it installs docker.io and starts dockerd)",
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Err(e) => panic!("no docker command ({e}); run `make deps`"),
        }
    });
}

/// The static `whoami` binary, built once per test binary.
fn whoami_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let target_dir = root.join("target").join("testsrv");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let build = |target: &str, rustflags: Option<&str>| {
            let mut cmd = Command::new(&cargo);
            cmd.current_dir(root)
                .args(["build", "--release", "-p", "boma-testsrv", "--target", target])
                .env("CARGO_TARGET_DIR", &target_dir)
                .env_remove("RUSTFLAGS");
            if let Some(f) = rustflags {
                cmd.env("RUSTFLAGS", f);
            }
            let out = cmd.output().expect("run cargo");
            out.status
                .success()
                .then(|| target_dir.join(target).join("release").join("whoami"))
                .ok_or_else(|| String::from_utf8_lossy(&out.stderr).into_owned())
        };
        match build("x86_64-unknown-linux-musl", None) {
            Ok(p) => p,
            Err(musl) => build("x86_64-unknown-linux-gnu", Some("-C target-feature=+crt-static"))
                .unwrap_or_else(|gnu| {
                    panic!("cannot build the static test server (musl: {musl}; glibc: {gnu}); run `make deps`")
                }),
        }
    })
    .clone()
}

/// The test images, removed when the last test of this binary that uses them is done.
pub struct Images {
    /// `whoami` as entrypoint, no healthcheck.
    pub plain: String,
    /// The same with a HEALTHCHECK (`whoami check`, every second).
    pub checked: String,
}

impl Drop for Images {
    fn drop(&mut self) {
        let _ = docker_raw(&["rmi", "-f", &self.checked, &self.plain]);
    }
}

/// Build (or share) the test images.
pub fn images() -> Arc<Images> {
    static SHARED: Mutex<Weak<Images>> = Mutex::new(Weak::new());
    let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(i) = shared.upgrade() {
        return i;
    }
    require_engine();
    let bin = whoami_binary();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(&bin, dir.path().join("whoami")).expect("copy whoami");
    let tag = unique("whoami");
    let plain = format!("{tag}:plain");
    let checked = format!("{tag}:checked");
    std::fs::write(
        dir.path().join("Dockerfile"),
        "FROM scratch\nCOPY whoami /whoami\nENTRYPOINT [\"/whoami\"]\n",
    )
    .unwrap();
    let ctx = dir.path().to_string_lossy().into_owned();
    // The guard exists before the first build, so a failed second build still cleans up.
    let images = Arc::new(Images { plain, checked });
    docker(&["build", "-q", "-t", &images.plain, &ctx]);
    std::fs::write(
        dir.path().join("Dockerfile"),
        format!(
            "FROM {}\nHEALTHCHECK --interval=1s --timeout=1s --retries=1 CMD [\"/whoami\", \"check\"]\n",
            images.plain
        ),
    )
    .unwrap();
    docker(&["build", "-q", "-t", &images.checked, &ctx]);
    *shared = Arc::downgrade(&images);
    images
}

/// A running container, removed (with its anonymous volumes) when dropped.
pub struct Container {
    pub id: String,
    pub name: String,
    _images: Arc<Images>,
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = docker_raw(&["rm", "-f", "-v", &self.id]);
    }
}

/// How to start a test container.
#[derive(Default)]
pub struct Spec<'a> {
    pub name: Option<String>,
    pub labels: Vec<(&'a str, &'a str)>,
    pub env: Vec<(&'a str, &'a str)>,
    /// `--expose` ports (the server listens on them too unless `PORTS` is in `env`).
    pub expose: Vec<u16>,
    pub networks: Vec<&'a str>,
    pub network_mode: Option<&'a str>,
    pub healthcheck: bool,
}

impl Container {
    /// `docker run -d` with `spec`.
    pub fn run(spec: Spec<'_>) -> Container {
        let images = images();
        let name = spec.name.clone().unwrap_or_else(|| unique("c"));
        let mut args: Vec<String> = vec!["run".into(), "-d".into(), "--name".into(), name.clone()];
        for (k, v) in &spec.labels {
            args.push("--label".into());
            args.push(format!("{k}={v}"));
        }
        let mut has_ports = false;
        for (k, v) in &spec.env {
            has_ports |= *k == "PORTS";
            args.push("--env".into());
            args.push(format!("{k}={v}"));
        }
        args.push("--env".into());
        args.push(format!("WHOAMI_NAME={name}"));
        if !has_ports && !spec.expose.is_empty() {
            let ports: Vec<String> = spec.expose.iter().map(u16::to_string).collect();
            args.push("--env".into());
            args.push(format!("PORTS={}", ports.join(",")));
        }
        for p in &spec.expose {
            args.push("--expose".into());
            args.push(p.to_string());
        }
        if let Some(mode) = spec.network_mode {
            args.push("--network".into());
            args.push(mode.into());
        } else if let Some(first) = spec.networks.first() {
            args.push("--network".into());
            args.push((*first).into());
        }
        let image = if spec.healthcheck {
            &images.checked
        } else {
            &images.plain
        };
        args.push(image.clone());
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let id = docker(&refs);
        for net in spec.networks.iter().skip(1) {
            docker(&["network", "connect", net, &id]);
        }
        Container {
            id,
            name,
            _images: images,
        }
    }

    /// The container's address on `network`.
    pub fn ip(&self, network: &str) -> String {
        let fmt = format!("{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}");
        docker(&["inspect", "-f", &fmt, &self.id])
    }

    pub fn stop(&self) {
        docker(&["stop", "-t", "1", &self.id]);
    }

    pub fn start(&self) {
        docker(&["start", &self.id]);
    }

    pub fn health(&self) -> String {
        docker(&["inspect", "-f", "{{.State.Health.Status}}", &self.id])
    }
}

/// A user-defined bridge network, removed when dropped.
pub struct Network {
    pub name: String,
}

impl Network {
    pub fn create() -> Network {
        require_engine();
        let name = unique("net");
        docker(&["network", "create", &name]);
        Network { name }
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        let _ = docker_raw(&["network", "rm", &self.name]);
    }
}

/// A TCP endpoint in front of the local engine's socket: `tcp://127.0.0.1:<port>` for boma's
/// remote-engine path, and a way to make "the engine" go away and come back (`down`/`up`)
/// without touching the real engine other tests use.
pub struct EngineProxy {
    pub port: u16,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl EngineProxy {
    /// Reserve a port; the proxy does not accept until `up`.
    pub async fn new() -> EngineProxy {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        EngineProxy {
            port,
            task: Mutex::new(None),
        }
    }

    pub fn endpoint(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    /// Start forwarding connections to `/var/run/docker.sock`.
    pub async fn up(&self) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("rebind engine proxy port");
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((mut tcp, _)) = listener.accept().await else {
                    continue;
                };
                conns.spawn(async move {
                    if let Ok(mut unix) =
                        tokio::net::UnixStream::connect("/var/run/docker.sock").await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut tcp, &mut unix).await;
                    }
                });
            }
        });
        *self.task.lock().unwrap() = Some(task);
    }

    /// Stop accepting and cut every open connection (the engine "goes away").
    pub async fn down(&self) {
        let task = self.task.lock().unwrap().take();
        if let Some(t) = task {
            t.abort();
            let _ = t.await;
        }
    }
}

impl Drop for EngineProxy {
    fn drop(&mut self) {
        if let Some(t) = self.task.lock().unwrap().take() {
            t.abort();
        }
    }
}

/// A TCP front for the local engine's socket that can drop traffic without a word, as a
/// broken path to a remote engine does: in [`EngineFront::black_hole`] mode every connection,
/// open or new, stays open and carries nothing either way; [`EngineFront::forward`] relays new
/// connections again while the black-holed ones stay dead. Everything closes when it is dropped.
pub struct EngineFront {
    pub port: u16,
    holed: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl EngineFront {
    pub async fn start() -> EngineFront {
        require_engine();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (holed, rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                if let Ok((tcp, _)) = listener.accept().await {
                    conns.spawn(relay(tcp, rx.clone()));
                }
            }
        });
        EngineFront { port, holed, task }
    }

    pub fn endpoint(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    /// Stop moving bytes on every connection, closing none.
    pub fn black_hole(&self) {
        self.holed.send_replace(true);
    }

    /// Relay new connections again.
    pub fn forward(&self) {
        self.holed.send_replace(false);
    }
}

impl Drop for EngineFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One connection of an [`EngineFront`]: relayed until the front black-holes, then held.
async fn relay(mut tcp: tokio::net::TcpStream, mut holed: tokio::sync::watch::Receiver<bool>) {
    if !*holed.borrow_and_update() {
        let Ok(mut unix) = tokio::net::UnixStream::connect("/var/run/docker.sock").await else {
            return;
        };
        tokio::select! {
            _ = tokio::io::copy_bidirectional(&mut tcp, &mut unix) => return,
            _ = holed.wait_for(|h| *h) => {}
        }
        // Hold both ends: the engine's side stays open as well.
        let _unix = unix;
        std::future::pending::<()>().await
    }
    std::future::pending::<()>().await
}

/// The local engine behind a TLS listener that demands a client certificate, as a remote
/// engine run with `--tlsverify` is: socat with OpenSSL (a TLS stack other than boma's)
/// terminates TLS on `127.0.0.1:<port>` and forwards to the engine's socket. Certificates are
/// made with the `openssl` CLI: a CA, the server (for IP 127.0.0.1), a client signed by the CA
/// and a client signed by another CA.
pub struct TlsEngine {
    pub port: u16,
    pub dir: tempfile::TempDir,
    _front: TlsFront,
}

impl TlsEngine {
    pub async fn start() -> TlsEngine {
        require_engine();
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        issue(
            d,
            "ca",
            "server",
            "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        );
        issue(d, "ca", "client", "extendedKeyUsage=clientAuth\n");
        issue(d, "rogue-ca", "rogue", "extendedKeyUsage=clientAuth\n");
        let front = TlsFront::start(
            &d.join("server.pem"),
            &d.join("server.key"),
            Some(&d.join("ca.pem")),
            "UNIX-CONNECT:/var/run/docker.sock",
        )
        .await;
        TlsEngine {
            port: front.port,
            dir,
            _front: front,
        }
    }

    /// `[providers.docker]` keys for this engine, with the client certificate `client` (or
    /// `rogue`, one the engine does not trust).
    pub fn config(&self, client: &str) -> String {
        let d = self.dir.path().display();
        format!(
            "endpoint = \"tcp://127.0.0.1:{}\"\ntls = {{ ca = \"{d}/ca.pem\", cert = \"{d}/{client}.pem\", key = \"{d}/{client}.key\" }}\n",
            self.port
        )
    }
}

/// A boma watching the engine at `endpoint` (the local socket when `None`), seeing only
/// containers labelled `boma.test=<tag>`, with the API on entrypoint `traefik` and the file
/// provider on `{dir}/dynamic.toml`. `extra` is appended to `[providers.docker]`.
pub fn boma_watching(
    tag: &str,
    endpoint: Option<&str>,
    extra: &str,
    dynamic: &str,
) -> crate::support::Boma {
    let endpoint = endpoint.map_or(String::new(), |e| format!("endpoint = \"{e}\"\n"));
    let cfg = format!(
        r#"
[entryPoints.web]
address = "127.0.0.1:0"
[entryPoints.traefik]
address = "127.0.0.1:0"
[api]
insecure = true
[providers.file]
filename = "{{dir}}/dynamic.toml"
[providers.docker]
{endpoint}constraints = "Label(`boma.test`, `{tag}`)"
{extra}
[log]
level = "debug"
"#
    );
    crate::support::Boma::start(&cfg, Some(dynamic))
}
