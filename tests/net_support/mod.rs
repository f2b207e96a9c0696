//! Network namespaces for the gateway tests: a namespace per host (gateway, clients, a WAN
//! server, a rogue DHCP server), veth cables between them, and the real clients that run there
//! (busybox `udhcpc`, ISC `dhclient`, `kdig`, `curl`). Every namespace is deleted when its guard
//! drops, so a failed test leaves nothing behind. Needs root; fails loudly without it.
#![allow(dead_code)]

use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static SEQ: AtomicU32 = AtomicU32::new(0);

/// Run a command, panicking with its output when it fails.
pub fn sh(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "`{}` failed: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn run(args: &[&str]) -> Output {
    Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e} (run `make deps`)", args[0]))
}

/// One network namespace, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// A fresh namespace `b<tag><pid><n>` with loopback up.
    pub fn new(tag: &str) -> Netns {
        assert!(
            run(&["id", "-u"]).stdout.starts_with(b"0"),
            "the network-namespace tests need root (CI runs as root)"
        );
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let name = format!("b{tag}{}x{n}", std::process::id());
        sh(&["ip", "netns", "add", &name]);
        let ns = Netns { name };
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// Run a command in the namespace; panics when it fails.
    pub fn exec(&self, args: &[&str]) -> String {
        let mut full = vec!["ip", "netns", "exec", self.name.as_str()];
        full.extend_from_slice(args);
        sh(&full)
    }

    /// Run a command in the namespace; its output whatever the exit status.
    pub fn try_exec(&self, args: &[&str]) -> Output {
        let mut full = vec!["ip", "netns", "exec", self.name.as_str()];
        full.extend_from_slice(args);
        run(&full)
    }

    /// A command to spawn in the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c.stdin(Stdio::null());
        c
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Kill whatever still runs in it (clients, servers), then delete it.
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// A veth cable: `a_if` in `a`, `b_if` in `b` (with `b_mac` when given), both up.
pub fn cable(a: &Netns, a_if: &str, b: &Netns, b_if: &str, b_mac: Option<&str>) {
    let tmp = format!(
        "t{}x{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    );
    sh(&[
        "ip",
        "link",
        "add",
        &tmp,
        "type",
        "veth",
        "peer",
        "name",
        &format!("{tmp}p"),
    ]);
    sh(&["ip", "link", "set", &tmp, "netns", &a.name]);
    sh(&["ip", "link", "set", &format!("{tmp}p"), "netns", &b.name]);
    a.exec(&["ip", "link", "set", &tmp, "name", a_if]);
    b.exec(&["ip", "link", "set", &format!("{tmp}p"), "name", b_if]);
    if let Some(mac) = b_mac {
        b.exec(&["ip", "link", "set", b_if, "address", mac]);
    }
    a.exec(&["ip", "link", "set", a_if, "up"]);
    b.exec(&["ip", "link", "set", b_if, "up"]);
}

/// What a DHCP client was given, from its script's environment.
#[derive(Debug, Default, Clone)]
pub struct Leased {
    pub ip: String,
    pub router: String,
    pub dns: String,
    pub domain: String,
    pub lease: String,
    pub server: String,
}

/// The udhcpc script: on `bound`/`renew`, configure the address and default route and write the
/// variables the test checks to `$BOMA_OUT`.
const UDHCPC_SCRIPT: &str = r#"#!/bin/sh
case "$1" in
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/$mask" dev "$interface"
    [ -n "$router" ] && ip route replace default via "$router"
    printf 'ip=%s\nrouter=%s\ndns=%s\ndomain=%s\nlease=%s\nserver=%s\n' \
      "$ip" "$router" "$dns" "$domain" "$lease" "$serverid" > "$BOMA_OUT" ;;
esac
exit 0
"#;

/// dhclient's (and dhcpcd's, which uses the same names) script: the same, from the `new_*`
/// variables. Both run their script with an environment of their own, so the output path is
/// written into the script.
const DHCLIENT_SCRIPT: &str = r#"#!/bin/sh
case "$reason" in
  BOUND|RENEW|REBOOT|REBIND)
    ip addr flush dev "$interface"
    ip addr add "$new_ip_address/$new_subnet_mask" dev "$interface"
    [ -n "$new_routers" ] && ip route replace default via "$new_routers"
    printf 'ip=%s\nrouter=%s\ndns=%s\ndomain=%s\nlease=%s\nserver=%s\n' \
      "$new_ip_address" "$new_routers" "$new_domain_name_servers" "$new_domain_name" \
      "$new_dhcp_lease_time" "$new_dhcp_server_identifier" > "BOMA_OUT" ;;
esac
exit 0
"#;

fn write_script(dir: &std::path::Path, name: &str, text: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path.display().to_string()
}

fn read_leased(path: &std::path::Path) -> Option<Leased> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut l = Leased::default();
    for line in text.lines() {
        let (k, v) = line.split_once('=')?;
        let v = v.trim().to_string();
        match k {
            "ip" => l.ip = v,
            "router" => l.router = v,
            "dns" => l.dns = v,
            "domain" => l.domain = v,
            "lease" => l.lease = v,
            "server" => l.server = v,
            _ => {}
        }
    }
    Some(l)
}

/// busybox `udhcpc` on `iface` in `ns`, sending `hostname`: the lease, or `None` when no server
/// gave one within its tries.
pub fn udhcpc(ns: &Netns, iface: &str, hostname: &str, dir: &std::path::Path) -> Option<Leased> {
    let script = write_script(dir, "udhcpc.sh", UDHCPC_SCRIPT);
    let out = dir.join(format!("udhcpc-{}-{hostname}.env", ns.name));
    let _ = std::fs::remove_file(&out);
    let status = ns
        .command("busybox")
        .args([
            "udhcpc", "-f", "-q", "-n", "-t", "8", "-T", "1", "-i", iface, "-s", &script,
        ])
        .args(["-x", &format!("hostname:{hostname}")])
        .env("BOMA_OUT", &out)
        .output()
        .expect("run udhcpc (make deps installs busybox)");
    if !status.status.success() {
        return None;
    }
    read_leased(&out)
}

/// ISC `dhclient` (one try, exits when bound) on `iface` in `ns`.
pub fn dhclient(ns: &Netns, iface: &str, dir: &std::path::Path) -> Option<Leased> {
    let (script, out) = env_script(ns, "dhclient", dir);
    let leases = dir.join(format!("dhclient-{}.leases", ns.name));
    let pid = dir.join(format!("dhclient-{}.pid", ns.name));
    let status = ns
        .command("timeout")
        .args(["20", "dhclient", "-1", "-sf", &script])
        .args([
            "-lf",
            &leases.display().to_string(),
            "-pf",
            &pid.display().to_string(),
            iface,
        ])
        .env("BOMA_OUT", &out)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("run dhclient (make deps installs isc-dhcp-client)");
    if !status.success() {
        return None;
    }
    read_leased(&out)
}

/// The `new_*` script for `client` in `ns`, and the file it writes.
fn env_script(ns: &Netns, client: &str, dir: &std::path::Path) -> (String, std::path::PathBuf) {
    let out = dir.join(format!("{client}-{}.env", ns.name));
    let _ = std::fs::remove_file(&out);
    let text = DHCLIENT_SCRIPT.replace("BOMA_OUT", &out.display().to_string());
    (
        write_script(dir, &format!("{client}-{}.sh", ns.name), &text),
        out,
    )
}

/// dhcpcd (one shot, IPv4, with its ARP probe and its DUID client identifier) on `iface` in
/// `ns`, sending `hostname`.
pub fn dhcpcd(ns: &Netns, iface: &str, hostname: &str, dir: &std::path::Path) -> Option<Leased> {
    let (script, out) = env_script(ns, "dhcpcd", dir);
    let status = ns
        .command("timeout")
        .args([
            "30", "dhcpcd", "-1", "-4", "-B", "-t", "20", "-h", hostname, "-c", &script, iface,
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("run dhcpcd (make deps installs dhcpcd-base)");
    if !status.success() {
        return None;
    }
    read_leased(&out)
}

/// Poll `f` every 100 ms until it returns `Some`, at most `limit`.
pub fn wait_for<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
