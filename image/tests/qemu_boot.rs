//! Boots built images in QEMU, end to end, with nothing but the image:
//! - qemu-virt: boma answers DNS for the local zone and serves the image's demo route (`gateway.village.lan` → `api@internal`)
//!   through the forwarded HTTP port; the boot-to-serving time is measured and written to
//!   target/image-test/figures.txt, never asserted; the data partition is mounted read-write and
//!   keeps a file across a clean reboot and across a QEMU kill (a power cut), and is clean
//!   (`e2fsck -fn`) after the next clean shutdown.
//! - raspi3b: the rpi3 image's kernel and Pi 3 DTB boot to boma's `ready` line on the serial
//!   console (smoke test).
//!
//! DNS: the host resolves `gateway.village.lan` through the forwarded port 53, over UDP and TCP,
//! with boma's DNS server, and gets the gateway's address (board/qemu-virt/boma.toml turns
//! `[dns]` on for 10.0.2.15).

mod support;

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use boma_image::qemu::{Boot, Guest, Machine, dns_a, http_get, wait_dns, wait_http};

/// One QEMU at a time: the machine has two cores and the boot time is measured.
static QEMU: Mutex<()> = Mutex::new(());

const BOOT_TIMEOUT: Duration = Duration::from_secs(90);

fn boot(machine: Machine, image: &Path, work: &Path, http: u16, dns: u16) -> Boot {
    Boot {
        machine,
        image: image.to_path_buf(),
        workdir: work.join("qemu"),
        http_port: http,
        dns_port: dns,
        append: String::new(),
        lan_mcast: None,
        interactive: false,
    }
}

/// Start, wait for the console shell and boma, then for the data partition (mounted in the
/// background); the boot-to-serving time.
fn start_serving(b: &Boot, log: &Path) -> (Guest, Duration) {
    let mut g = Guest::start(b, log).expect("start qemu");
    let served = wait_http(
        &mut g,
        b.http_port,
        "gateway.village.lan",
        "/ping",
        BOOT_TIMEOUT,
    );
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

/// Run a shell command on the console and wait for its marker line.
fn shell(g: &mut Guest, command: &str, marker: u32) {
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

fn poweroff(g: &mut Guest) {
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

#[test]
fn qemu_virt_serves_dns_and_http_and_keeps_data_across_reboot_and_power_cut() {
    let _one = QEMU.lock().unwrap_or_else(|e| e.into_inner());
    let dir = support::test_dir("qemu-virt");
    let report = support::build_image("qemu-virt", &dir, false);
    let image = dir.join("disk.img");
    std::fs::copy(&report.image, &image).expect("copy image");
    // Write the 512 MiB copy out now, so the host's writeback does not run during the boot
    // that is being timed.
    std::fs::File::open(&image)
        .and_then(|f| f.sync_all())
        .expect("sync image");
    let b = boot(
        Machine::Virt,
        &image,
        &dir,
        support::free_port(),
        support::free_port(),
    );

    // First boot: serving, data partition mounted, a file written.
    let (mut g, served) = start_serving(&b, &dir.join("console-1.txt"));
    support::figure(&format!(
        "qemu-virt boot to serving HTTP (QEMU start → 200 from /ping through the forwarded port, TCG, -smp 2): {:.2} s",
        served.as_secs_f64()
    ));
    let (status, body) = http_get(
        b.http_port,
        "gateway.village.lan",
        "/api/version",
        Duration::from_secs(5),
    )
    .expect("api answers");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"Codename\":\"boma\""), "{body}");
    // The local zone through the forwarded DNS port, UDP then TCP.
    let guest_ip = std::net::Ipv4Addr::new(10, 0, 2, 15);
    let udp = wait_dns(b.dns_port, "gateway.village.lan", Duration::from_secs(20));
    assert_eq!(
        udp,
        Some((0, vec![guest_ip])),
        "DNS over UDP; console:\n{}",
        g.console()
    );
    let tcp = dns_a(
        b.dns_port,
        "gateway.village.lan",
        true,
        Duration::from_secs(5),
    );
    assert_eq!(tcp, Some((0, vec![guest_ip])), "DNS over TCP");
    let (status, _) = http_get(
        b.http_port,
        "unknown.village.lan",
        "/",
        Duration::from_secs(5),
    )
    .expect("answers");
    assert_eq!(status, 404, "unrouted names get Traefik's 404");
    let console = g.console();
    assert!(
        console.contains("on /data"),
        "data partition not mounted:\n{console}"
    );
    assert!(
        console.contains("starting boma with /boot/boma.toml"),
        "{console}"
    );
    shell(
        &mut g,
        "grep ' /data ext4 rw' /proc/mounts && echo first-boot > /data/probe.txt && sync",
        100,
    );
    poweroff(&mut g);
    drop(g);
    support::fsck_data_partition(&image, &dir);

    // Second boot: the file is there; write another, then cut the power.
    let (mut g, _) = start_serving(&b, &dir.join("console-2.txt"));
    let from = g.console().len();
    shell(
        &mut g,
        "cat /data/probe.txt && echo power-cut > /data/cut.txt && sync",
        200,
    );
    assert!(
        g.console()[from..].contains("\nfirst-boot"),
        "file lost across reboot:\n{}",
        g.console()
    );
    g.kill();
    drop(g);

    // Third boot after the kill: the journal is replayed, both files are there, boma serves.
    let (mut g, served) = start_serving(&b, &dir.join("console-3.txt"));
    support::figure(&format!(
        "qemu-virt boot to serving after a QEMU kill: {:.2} s",
        served.as_secs_f64()
    ));
    let from = g.console().len();
    shell(&mut g, "cat /data/probe.txt /data/cut.txt", 300);
    let out = g.console()[from..].to_string();
    assert!(
        out.contains("\nfirst-boot") && out.contains("\npower-cut"),
        "files lost after power cut:\n{out}"
    );
    poweroff(&mut g);
    drop(g);
    support::fsck_data_partition(&image, &dir);
}

#[test]
fn raspi3b_boots_the_rpi3_kernel_and_dtb_to_boma_ready() {
    let _one = QEMU.lock().unwrap_or_else(|e| e.into_inner());
    let dir = support::test_dir("raspi3b");
    let report = support::build_image("rpi3", &dir, false);
    let image = dir.join("disk.img");
    std::fs::copy(&report.image, &image).expect("copy image");
    let b = boot(Machine::Raspi3b, &image, &dir, 0, 0);
    let mut g = Guest::start(&b, &dir.join("console.txt")).expect("start qemu");
    let ready = g.wait_for("\nready\n", 0, Duration::from_secs(180));
    let Some(ready) = ready else {
        panic!("no `ready` from boma on raspi3b; console:\n{}", g.console());
    };
    support::figure(&format!(
        "raspi3b (rpi3 image) QEMU start → boma ready on ttyS1: {:.2} s",
        ready.as_secs_f64()
    ));
    assert!(
        g.console().contains("boma 0.1.0 running"),
        "{}",
        g.console()
    );
    g.kill();
}
