//! The gateway's LAN for the QEMU tests, inside network namespaces this test creates and deletes,
//! so nothing touches the host's own network:
//!
//! ```text
//!  namespace `qemu`: QEMU (its user network = the WAN; 10.0.2.2 = this namespace's loopback,
//!                    where `serve_http` listens), tap0 ─┐
//!                                                      br0 ── lan0 ═veth═ eth0  namespace `client`
//! ```
//!
//! The client runs real programs: busybox `udhcpc`, `kdig`, `curl` (installed by `make deps`).
//! Needs root; fails loudly without it or without the programs.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

// The namespace guard and command helpers are the gateway tests' own (tests/net_support).
#[path = "../../../tests/net_support/mod.rs"]
mod base;
pub use base::Netns;

/// The tap QEMU's LAN NIC uses, inside `Lan::qemu`.
pub const TAP: &str = "tap0";

/// QEMU's namespace with a tap bridged to a client namespace.
pub struct Lan {
    /// Dropped first: the programs serving in the QEMU namespace.
    servers: Vec<Child>,
    pub client: Netns,
    pub qemu: Netns,
}

impl Lan {
    pub fn new() -> Lan {
        for tool in ["busybox", "kdig", "curl"] {
            assert!(
                Command::new("sh")
                    .args(["-c", &format!("command -v {tool}")])
                    .stdout(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success()),
                "{tool} is missing: run `make deps`"
            );
        }
        let qemu = Netns::new("q");
        let client = Netns::new("c");
        qemu.exec(&["ip", "tuntap", "add", "dev", TAP, "mode", "tap"]);
        qemu.exec(&["ip", "link", "add", "br0", "type", "bridge"]);
        qemu.exec(&[
            "ip",
            "link",
            "add",
            "lan0",
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &client.name,
        ]);
        qemu.exec(&["ip", "link", "set", TAP, "master", "br0"]);
        qemu.exec(&["ip", "link", "set", "lan0", "master", "br0"]);
        for link in [TAP, "lan0", "br0"] {
            qemu.exec(&["ip", "link", "set", link, "up"]);
        }
        client.exec(&["ip", "link", "set", "eth0", "up"]);
        Lan {
            servers: Vec::new(),
            client,
            qemu,
        }
    }

    /// busybox httpd on 127.0.0.1:`port` of the QEMU namespace (the guest's 10.0.2.2), serving
    /// `dir`; waits until it answers.
    pub fn serve_http(&mut self, dir: &Path, port: u16) {
        let child = self
            .qemu
            .command("busybox")
            .args(["httpd", "-f", "-p", &format!("127.0.0.1:{port}"), "-h"])
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("busybox httpd");
        self.servers.push(child);
        let url = format!("http://127.0.0.1:{port}/");
        let deadline = Instant::now() + Duration::from_secs(10);
        // Any HTTP answer (a 404 for the folder too) means it listens.
        let answers = || {
            let args = [
                "curl",
                "-s",
                "--noproxy",
                "*",
                "--max-time",
                "1",
                "-o",
                "/dev/null",
                &url,
            ];
            self.qemu.try_exec(&args).status.success()
        };
        while !answers() {
            assert!(
                Instant::now() < deadline,
                "busybox httpd did not start in {}",
                self.qemu.name
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for c in &mut self.servers {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `curl` in `ns` (no proxy from the environment, 3 s at most): the body when the request got
/// an HTTP 2xx answer, None otherwise.
pub fn curl(ns: &Netns, args: &[&str]) -> Option<String> {
    let mut full = vec!["curl", "-sf", "--noproxy", "*", "--max-time", "3"];
    full.extend_from_slice(args);
    let out = ns.try_exec(&full);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `kdig +short` for the A records of `name` at `server` in `ns` (UDP, or TCP): the addresses,
/// None when nothing answered.
pub fn dig(ns: &Netns, server: &str, name: &str, tcp: bool) -> Option<Vec<String>> {
    let at = format!("@{server}");
    let mut args = vec!["kdig", &at, "+short", "+time=2", "+retry=0", name, "A"];
    if tcp {
        args.push("+tcp");
    }
    let out = ns.try_exec(&args);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    // kdig prints ";; ..." lines when no server answered.
    if !out.status.success() || text.contains(";;") {
        return None;
    }
    Some(text.lines().map(|l| l.trim().to_string()).collect())
}

/// What the client's DHCP client was given.
#[derive(Debug, Default, Clone)]
pub struct Leased {
    pub ip: String,
    pub mask: String,
    pub router: String,
    pub dns: String,
    pub domain: String,
}

/// The udhcpc script: on `bound`, configure the address and default route and write the lease
/// to `$BOMA_OUT`.
const UDHCPC_SCRIPT: &str = r#"#!/bin/sh
case "$1" in
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/$mask" dev "$interface"
    [ -n "$router" ] && ip route replace default via "$router"
    printf 'ip=%s\nmask=%s\nrouter=%s\ndns=%s\ndomain=%s\n' \
      "$ip" "$mask" "$router" "$dns" "$domain" > "$BOMA_OUT.tmp"
    mv "$BOMA_OUT.tmp" "$BOMA_OUT" ;;
esac
exit 0
"#;

/// A busybox `udhcpc` running in the client namespace until it has a lease (or gives up).
pub struct Dhcp {
    child: Child,
    out: std::path::PathBuf,
}

/// Start busybox `udhcpc` on the client's eth0 (discovers 1 s apart for up to `tries` s).
pub fn udhcpc(lan: &Lan, dir: &Path, tries: u32) -> Dhcp {
    use std::os::unix::fs::PermissionsExt;
    let script = dir.join("udhcpc.sh");
    std::fs::write(&script, UDHCPC_SCRIPT).expect("write udhcpc script");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let out = dir.join("lease.env");
    let _ = std::fs::remove_file(&out);
    let child = lan
        .client
        .command("busybox")
        .args([
            "udhcpc",
            "-f",
            "-q",
            "-n",
            "-T",
            "1",
            "-t",
            &tries.to_string(),
        ])
        .args(["-i", "eth0", "-x", "hostname:villager", "-s"])
        .arg(&script)
        .env("BOMA_OUT", &out)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("udhcpc.log")).expect("udhcpc log"))
        .spawn()
        .expect("busybox udhcpc");
    Dhcp { child, out }
}

fn parse_lease(text: &str) -> Leased {
    let mut l = Leased::default();
    for (k, v) in text.lines().filter_map(|line| line.split_once('=')) {
        let v = v.trim().to_string();
        match k {
            "ip" => l.ip = v,
            "mask" => l.mask = v,
            "router" => l.router = v,
            "dns" => l.dns = v,
            "domain" => l.domain = v,
            _ => {}
        }
    }
    l
}

impl Dhcp {
    /// Wait until the client has its lease: the lease and when it was there, or None when the
    /// client gave up or `timeout` passed.
    pub fn wait(&mut self, timeout: Duration) -> Option<(Leased, Instant)> {
        let deadline = Instant::now() + timeout;
        loop {
            // Read the exit status first: the script writes the file before the client exits.
            let exited = matches!(self.child.try_wait(), Ok(Some(_)));
            if let Ok(text) = std::fs::read_to_string(&self.out) {
                return Some((parse_lease(&text), Instant::now()));
            }
            if exited || Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Dhcp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
