//! The guest side of the QEMU boot tests: a qemu-virt or raspi3b boot of a built image, waiting
//! for it to serve, commands on its console shell, its memory as a figure, a clean power-off,
//! and polling the guest's DNS and whatever else a check waits for.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use boma_image::qemu::{Boot, Guest, Machine, dns_a, wait_http};

use super::support;
use super::support::netns;

/// How long a boot may take to serve.
const BOOT_TIMEOUT: Duration = Duration::from_secs(90);

/// Build `board` into `dir` and copy its image to `dir/disk.img` (the copy the guest writes).
pub fn copy_of_built_image(board: &str, dir: &Path) -> PathBuf {
    let report = support::build_image(board, dir, false);
    let image = dir.join("disk.img");
    std::fs::copy(&report.image, &image).expect("copy image");
    image
}

/// How `machine` boots `image`: slot a's kernel directly, no LAN NIC, QEMU's files under
/// `work/qemu`, boma's HTTP and DNS ports forwarded to `http` and `dns`.
pub fn boot(machine: Machine, image: &Path, work: &Path, http: u16, dns: u16) -> Boot {
    Boot {
        machine,
        image: image.to_path_buf(),
        workdir: work.join("qemu"),
        http_port: http,
        dns_port: dns,
        append: String::new(),
        lan: None,
        netns: None,
        interactive: false,
        uboot: false,
    }
}

/// Poll `ready` until it holds: the time since QEMU started, or None on timeout or QEMU exit.
fn wait_until(
    g: &mut Guest,
    timeout: Duration,
    mut ready: impl FnMut() -> bool,
) -> Option<Duration> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if ready() {
            return Some(g.started.elapsed());
        }
        if g.exited() {
            return None;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    None
}

/// Start, wait for the console shell and boma, then for the data partition (mounted in the
/// background); the boot-to-serving time. With `lan`, QEMU runs in its namespace and the
/// forwarded HTTP port is asked from there.
pub fn start_serving(b: &Boot, log: &Path, lan: Option<&netns::Lan>) -> (Guest, Duration) {
    let mut g = Guest::start(b, log).expect("start qemu");
    let served = match lan {
        None => wait_http(
            &mut g,
            b.http_port,
            "gateway.village.lan",
            "/ping",
            BOOT_TIMEOUT,
        ),
        Some(lan) => {
            let url = format!("http://127.0.0.1:{}/ping", b.http_port);
            wait_until(&mut g, BOOT_TIMEOUT, || {
                let args = ["--max-time", "0.5", "-H", "Host: gateway.village.lan", &url];
                netns::curl(&lan.qemu, &args).is_some()
            })
        }
    };
    let Some(served) = served else {
        panic!(
            "boma never served through 127.0.0.1:{}; console:\n{}",
            b.http_port,
            g.console()
        );
    };
    // The data partition is mounted in the background while boma starts.
    assert!(
        g.wait_for(
            "data partition /dev/vda2 on /data",
            0,
            Duration::from_secs(30)
        )
        .is_some(),
        "data partition not mounted; console:\n{}",
        g.console()
    );
    assert!(
        g.wait_for("boma# ", 0, Duration::from_secs(30)).is_some(),
        "no rescue shell on the console:\n{}",
        g.console()
    );
    (g, served)
}

/// Run a shell command on the console; what the console printed from then on.
pub fn shell_output(g: &mut Guest, command: &str, marker: u32) -> String {
    let from = g.console().len();
    shell(g, command, marker);
    g.console()[from..].to_string()
}

/// Run a shell command on the console and wait for its marker line.
pub fn shell(g: &mut Guest, command: &str, marker: u32) {
    let from = g.console().len();
    // The marker is computed by the shell so the echoed command line does not match it.
    g.send(&format!("{command}; echo DONE-$(({marker} + 1))"))
        .expect("console");
    let done = format!("DONE-{}", marker + 1);
    assert!(
        g.wait_for(&done, from, Duration::from_secs(30)).is_some(),
        "`{command}` did not finish; console:\n{}",
        g.console()
    );
}

/// Record the guest's memory use (busybox `free`, KiB) as a figure, a few seconds after boot
/// (boma serving, the data partition mounted). The initramfs itself is in RAM and counts as
/// shared / buff-cache.
pub fn memory_figure(g: &mut Guest, what: &str) {
    let out = shell_output(g, "sleep 3; free", 700);
    let mem: Vec<u64> = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("Mem:"))
        .map(|rest| {
            rest.split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let [total, used, free, shared, cache, ..] = mem[..] else {
        panic!("no `Mem:` line from free:\n{out}");
    };
    let mib = |k: u64| k as f64 / 1024.0;
    support::figure(&format!(
        "{what}: RAM after boot (free): total {:.0} MiB, used {:.1} MiB, shared {:.1} MiB, buff/cache {:.1} MiB, free {:.1} MiB",
        mib(total),
        mib(used),
        mib(shared),
        mib(cache),
        mib(free)
    ));
}

pub fn poweroff(g: &mut Guest) {
    g.send("poweroff").expect("console");
    assert!(
        g.wait_exit(Duration::from_secs(60)),
        "guest did not power off:\n{}",
        g.console()
    );
    assert!(
        g.console().contains("boma-init: filesystems unmounted"),
        "no clean shutdown:\n{}",
        g.console()
    );
}

/// The guest's DNS answer through the forwarded port, polled until it is `want` (the answer for
/// `address = "auto"` follows the WAN lease): the last answer.
pub fn dns_until(port: u16, name: &str, want: &(u8, Vec<Ipv4Addr>)) -> Option<(u8, Vec<Ipv4Addr>)> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = None;
    while Instant::now() < deadline {
        last = dns_a(port, name, false, Duration::from_millis(500));
        if last.as_ref() == Some(want) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    last
}

/// Poll `probe` until it returns something: the value and the time since QEMU started.
pub fn poll<T>(
    g: &Guest,
    timeout: Duration,
    mut probe: impl FnMut() -> Option<T>,
) -> Option<(T, Duration)> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe() {
            return Some((v, g.started.elapsed()));
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
