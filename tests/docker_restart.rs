//! A real Docker engine restarted while boma serves its routes under load. The engine is a
//! private one started by this test (its own socket, data and exec roots, its own bridge, and
//! `--live-restore`, so its containers keep running while it is down), so the engine every other
//! test uses is never touched. (Not `--bridge none`: an engine started that way deletes the
//! host's `docker0`, breaking the shared engine's networking.) boma must keep answering the route throughout (no failed
//! request), report nothing lost, and follow the engine again once it is back: a container
//! started right after the restart becomes routable.
//!
//! Needs root (dockerd) like every container test; `make test` provides both. The resync time
//! is printed, not asserted (scripts/bench-docker.py records it beside Traefik's).

mod docker_support;
mod support;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use docker_support::{images, unique};
use support::{Boma, Client, eventually};

/// The private engine's bridge: its own interface and an RFC 2544 subnet next to the shared
/// engine's (198.18.0.0/24), never used by the host-network containers here.
const BRIDGE_ADDR: &str = "198.18.250.1/24";

/// A private engine; stopped, its containers removed, its bridge and directories deleted when
/// dropped.
struct Engine {
    dir: tempfile::TempDir,
    bridge: String,
    child: Option<Child>,
}

impl Engine {
    fn start() -> Engine {
        let dir = tempfile::Builder::new()
            .prefix("boma-engine-")
            .tempdir()
            .expect("tempdir");
        let bridge = format!("bomae{}", std::process::id() % 100_000);
        let ip = |args: &[&str]| {
            let ok = Command::new("ip")
                .args(args)
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "ip {args:?} (needs root)");
        };
        ip(&["link", "add", &bridge, "type", "bridge"]);
        let mut engine = Engine {
            dir,
            bridge,
            child: None,
        };
        ip(&["addr", "add", BRIDGE_ADDR, "dev", &engine.bridge]);
        ip(&["link", "set", &engine.bridge, "up"]);
        engine.launch();
        engine
    }

    fn sock(&self) -> PathBuf {
        self.dir.path().join("docker.sock")
    }

    fn endpoint(&self) -> String {
        format!("unix://{}", self.sock().display())
    }

    /// Start dockerd and wait until it answers.
    fn launch(&mut self) {
        let d = self.dir.path();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(d.join("dockerd.log"))
            .expect("engine log");
        let child = Command::new("dockerd")
            .arg("--host")
            .arg(self.endpoint())
            .arg("--data-root")
            .arg(d.join("data"))
            .arg("--exec-root")
            .arg(d.join("exec"))
            .arg("--pidfile")
            .arg(d.join("dockerd.pid"))
            .args([
                "--bridge",
                &self.bridge,
                "--iptables=false",
                "--ip6tables=false",
            ])
            .args(["--storage-driver", "vfs", "--live-restore"])
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("dockerd (make test installs docker.io; it needs root)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if self.docker_ok(&["version", "-f", "{{.Server.Version}}"]) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "the private engine did not answer within 60 s: {}",
            std::fs::read_to_string(d.join("dockerd.log")).unwrap_or_default()
        );
    }

    /// SIGTERM, and wait for it to exit (its containers stay up: live restore).
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            let _ = child.wait();
        }
    }

    fn docker_ok(&self, args: &[&str]) -> bool {
        Command::new("docker")
            .arg("-H")
            .arg(self.endpoint())
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn docker(&self, args: &[&str]) -> String {
        let out = Command::new("docker")
            .arg("-H")
            .arg(self.endpoint())
            .args(args)
            .output()
            .expect("docker");
        assert!(
            out.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// A whoami container in host network mode on a free port, routed on `<router>.restart`.
    fn run(&self, image: &str, tag: &str, router: &str) -> String {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        self.docker(&[
            "run",
            "-d",
            "--network",
            "host",
            "-e",
            &format!("PORTS={port}"),
            "--label",
            &format!("boma.test={tag}"),
            "--label",
            &format!("traefik.http.routers.{router}.rule=Host(`{router}.restart`)"),
            "--label",
            &format!("traefik.http.services.{router}.loadbalancer.server.port={port}"),
            image,
        ])
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if self.child.is_some()
            && let Ok(out) = Command::new("docker")
                .arg("-H")
                .arg(self.endpoint())
                .args(["ps", "-aq"])
                .output()
        {
            for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = self.docker_ok(&["rm", "-f", id]);
            }
        }
        self.stop();
        // dockerd leaves its own mounts behind (the data root bound on itself, the default
        // network namespace): unmount them, deepest first, so the directory can go.
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
        let root = self.dir.path().to_string_lossy().into_owned();
        let mut points: Vec<&str> = (mounts.lines())
            .filter_map(|l| l.split_whitespace().nth(1))
            .filter(|p| p.starts_with(&root))
            .collect();
        points.sort_unstable_by(|a, b| b.cmp(a));
        for p in points {
            let _ = Command::new("umount").args(["-l", p]).status();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .status();
    }
}

/// Clients sending keep-alive requests to one route until told to stop.
struct Load {
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    running: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(boma: &Boma, host: &'static str, clients: usize) -> Load {
        let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let running = Arc::new(AtomicBool::new(true));
        let addr = boma.addr("web");
        let tasks = (0..clients)
            .map(|_| {
                let (ok, failed, running) = (ok.clone(), failed.clone(), running.clone());
                tokio::spawn(async move {
                    let client = Client::new();
                    // Bounded whatever happens: the test ends long before.
                    let deadline = Instant::now() + Duration::from_secs(180);
                    while running.load(Ordering::Relaxed) && Instant::now() < deadline {
                        let status = client.get(addr, host, "/").await.status;
                        let counter = if status == 200 { &ok } else { &failed };
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        Load {
            ok,
            failed,
            running,
            tasks,
        }
    }

    async fn stop(self) -> (u64, u64) {
        self.running.store(false, Ordering::Relaxed);
        for t in self.tasks {
            t.await.expect("load task");
        }
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_survive_an_engine_restart_under_load() {
    let images = images();
    let tag = unique("restart");
    let mut engine = Engine::start();
    let load_image = format!(
        "docker save {} | docker -H {} load -q",
        images.plain,
        engine.endpoint()
    );
    let loaded = Command::new("sh")
        .args(["-c", &load_image])
        .status()
        .expect("sh");
    assert!(loaded.success(), "{load_image}");
    engine.run(&images.plain, &tag, "first");

    let boma = docker_support::boma_watching(&tag, Some(&engine.endpoint()), "", "");
    let client = Client::new();
    let first = eventually(Duration::from_secs(30), || async {
        (client
            .get(boma.addr("web"), "first.restart", "/")
            .await
            .status
            == 200)
            .then_some(())
    })
    .await;
    assert!(first.is_some(), "the first container is routed");

    let load = Load::start(&boma, "first.restart", 4);
    tokio::time::sleep(Duration::from_secs(1)).await;
    engine.stop();
    tokio::time::sleep(Duration::from_secs(3)).await;
    engine.launch();
    let back = Instant::now();
    engine.run(&images.plain, &tag, "second");
    let second = eventually(Duration::from_secs(30), || async {
        (client
            .get(boma.addr("web"), "second.restart", "/")
            .await
            .status
            == 200)
            .then_some(())
    })
    .await;
    let resync = back.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (ok, failed) = load.stop().await;
    println!(
        "engine restart: {ok} requests answered 200, {failed} failed; second container routable {} ms after the engine answered",
        resync.as_millis()
    );
    assert!(
        second.is_some(),
        "a container started after the restart is routed"
    );
    assert!(ok > 0, "the load ran");
    assert_eq!(failed, 0, "every request during the restart was answered");
    // The first container kept its route after the resync too.
    assert_eq!(
        client
            .get(boma.addr("web"), "first.restart", "/")
            .await
            .status,
        200
    );
}
