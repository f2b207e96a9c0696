//! Network namespaces for the tests of `boma::net`. The library works on the namespace of the
//! process that calls it, so a test makes namespaces (`ip netns add boma-t-<pid>-<n>`), lays out
//! veths with `ip`, and re-runs its own test binary inside one of them ([`Netns::child`]) with
//! `BOMA_NETNS_CHILD=<phase>` set; the test function sees the variable ([`phase`]) and does the
//! in-namespace part. Only addresses inside these namespaces are used; the host's network is
//! never touched. Every command has a time limit, and every namespace and background process is
//! removed when its guard is dropped.
#![allow(dead_code)]

use std::io::{Read, Seek, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub const CHILD_ENV: &str = "BOMA_NETNS_CHILD";
const COMMAND_LIMIT: Duration = Duration::from_secs(60);

static NEXT: AtomicU32 = AtomicU32::new(0);

/// The phase this process was re-run for, inside a namespace; None in the outer test.
pub fn phase() -> Option<String> {
    std::env::var(CHILD_ENV).ok()
}

/// Runs a future on a fresh current-thread runtime (in a child phase).
pub fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(f)
}

pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `cmd` to its end, at most `limit` (killed after that), with its output in temp files so
/// that a chatty command never blocks on a full pipe.
pub fn run_within(cmd: &mut Command, limit: Duration) -> Output {
    let mut out = tempfile::tempfile().expect("temp file");
    let mut err = tempfile::tempfile().expect("temp file");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("dup"))
        .stderr(err.try_clone().expect("dup"))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let read = |f: &mut std::fs::File| {
        let mut s = String::new();
        f.rewind().expect("rewind");
        f.read_to_string(&mut s).expect("read output");
        s
    };
    Output {
        status,
        stdout: read(&mut out),
        stderr: read(&mut err),
    }
}

/// Runs a command that must succeed; returns its stdout.
pub fn must(args: &[&str]) -> String {
    let out = run_within(Command::new(args[0]).args(&args[1..]), COMMAND_LIMIT);
    assert!(
        out.status.success(),
        "{args:?} failed ({}): {}{}",
        out.status,
        out.stdout,
        out.stderr
    );
    out.stdout
}

/// A background process; killed when dropped.
pub struct Bg(Child);

impl Drop for Bg {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Bg {
    /// Writes to the process's standard input (when it was started with one).
    pub fn write(&mut self, text: &str) {
        let stdin = self.0.stdin.as_mut().expect("stdin");
        stdin.write_all(text.as_bytes()).expect("write to stdin");
        stdin.flush().expect("flush");
    }
}

/// A network namespace made for one test, deleted when dropped.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new() -> Self {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("boma-t-{}-{n}", std::process::id());
        must(&["ip", "netns", "add", &name]);
        let ns = Netns { name };
        ns.ip("link set lo up");
        ns
    }

    /// `ip -n NS ARGS` (split on whitespace); must succeed.
    pub fn ip(&self, args: &str) -> String {
        let mut v = vec!["ip", "-n", &self.name];
        v.extend(args.split_whitespace());
        must(&v)
    }

    /// A program run inside the namespace; must succeed.
    pub fn exec(&self, args: &[&str]) -> String {
        must(&self.exec_args(args))
    }

    /// A program run inside the namespace, however it ends.
    pub fn try_exec(&self, args: &[&str], limit: Duration) -> Output {
        let v = self.exec_args(args);
        run_within(Command::new(v[0]).args(&v[1..]), limit)
    }

    fn exec_args<'a>(&'a self, args: &[&'a str]) -> Vec<&'a str> {
        let mut v = vec!["ip", "netns", "exec", &self.name];
        v.extend_from_slice(args);
        v
    }

    /// `nft ARGS` inside the namespace (tests only read back the ruleset with it).
    pub fn nft(&self, args: &str) -> String {
        let mut v = vec!["nft"];
        v.extend(args.split_whitespace());
        self.exec(&v)
    }

    /// Loads `text` with `nft -f` inside the namespace.
    pub fn nft_file(&self, text: &str) {
        let mut f = tempfile::NamedTempFile::new().expect("temp file");
        f.write_all(text.as_bytes()).expect("write nft file");
        let path = f.path().to_str().expect("utf-8 path").to_string();
        self.exec(&["nft", "-f", &path]);
    }

    /// A program started in the background inside the namespace, with a pipe for its stdin.
    pub fn spawn(&self, args: &[&str]) -> Bg {
        let v = self.exec_args(args);
        let child = Command::new(v[0])
            .args(&v[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {v:?}: {e}"));
        Bg(child)
    }

    /// Re-runs test `test` of this binary inside the namespace with `BOMA_NETNS_CHILD=phase`;
    /// panics with the child's output when it fails.
    pub fn child(&self, test: &str, phase: &str) {
        let exe = std::env::current_exe().expect("test binary");
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name])
            .arg(exe)
            .args([test, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, phase);
        let out = run_within(&mut cmd, COMMAND_LIMIT);
        assert!(
            out.status.success(),
            "{test} phase {phase} failed in {}:\n{}{}",
            self.name,
            out.stdout,
            out.stderr
        );
        assert!(
            out.stdout.contains("1 passed"),
            "{test} phase {phase} ran no test:\n{}",
            out.stdout
        );
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run_within(
            Command::new("ip").args(["netns", "del", &self.name]),
            COMMAND_LIMIT,
        );
    }
}

/// Retries `f` (at most `tries` times, 200 ms apart) until it returns Some.
pub fn retry<T>(tries: u32, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    for i in 0..tries {
        if let Some(v) = f() {
            return Some(v);
        }
        if i + 1 < tries {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    None
}
