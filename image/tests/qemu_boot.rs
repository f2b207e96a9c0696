//! Boots built images in QEMU, end to end, with nothing but the image:
//! - qemu-virt: boma answers DNS for the local zone and serves the image's demo route (`gateway.village.lan` → `api@internal`)
//!   through the forwarded HTTP port; the boot-to-serving time is measured and written to
//!   target/image-test/figures.txt, never asserted; the data partition is mounted read-write and
//!   keeps a file across a clean reboot and across a QEMU kill (a power cut), and is clean
//!   (`e2fsck -fn`) after the next clean shutdown.
//! - qemu-virt as a gateway, in the second of those boots (no extra boot; qemu_boot/lan.rs): QEMU
//!   runs in a network namespace of the test with its LAN NIC (eth1) on a tap bridged to a client
//!   namespace (support/netns.rs). There busybox `udhcpc` gets a lease from boma, `kdig` resolves
//!   `gateway.village.lan` through boma's DNS (and through the DNS redirect, asking an address
//!   that is not boma's), `curl` fetches it through the proxy on the guest's LAN address and
//!   reaches an HTTP server on the QEMU namespace's loopback (the guest's 10.0.2.2) through the
//!   guest's NAT; the lease is on the data partition and survives the power cut. The first and
//!   third boots have no LAN NIC: boma keeps retrying eth1 and serves as before. A fourth boot
//!   finds the data partition destroyed (zeroed): e2fsck cannot repair it, init recreates it
//!   from the boot partition's copy and says so in the console and /data/fsck.log.
//! - qemu-virt power cuts: four rounds in which a new LAN client gets a lease and the guest
//!   appends fsync'd lines to /data while QEMU is killed without a sync; a last boot finds every
//!   acknowledged line and every lease, and the partition is clean afterwards.
//! - qemu-virt Wi-Fi, in that last boot (qemu_boot/wifi.rs): boma's access point on a simulated
//!   radio (mac80211_hwsim, Debian's hostapd) serves a WPA2 client on the other radio in a
//!   network namespace of the guest (Debian's wpa_supplicant): lease, DNS, proxy.
//! - raspi3b: the Pi's U-Boot (Debian's rpi_arm64 build, from the image) finds `boot.scr` on
//!   the emulated SD card and boots slot a with the Pi 3 DTB to boma's `ready` line on the serial
//!   console; QEMU's USB network adapter gets its drivers (dwc2 and its PHY for the port,
//!   cdc_ether for the adapter) by modalias, none of them named in the board file, then a DHCP
//!   lease on usb0, and boma answers through the forwarded HTTP port.
//!
//! DNS: the host resolves `gateway.village.lan` through the forwarded port 53, over UDP and TCP,
//! with boma's DNS server, and gets the gateway's address on the interface the query came in on
//! (board/qemu-virt/boma.toml: `[dns] address = "auto"`; 10.0.2.15, leased by the udhcpc boma
//! runs on the WAN).

#[path = "qemu_boot/guest.rs"]
mod guest;
#[path = "qemu_boot/lan.rs"]
mod lan;
mod support;
#[path = "qemu_boot/wifi.rs"]
mod wifi;

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use boma_image::build::{DATA_SIZE, DATA_START};
use boma_image::qemu::{Boot, Guest, Lan, Machine, dns_a, http_get, wait_http};
use guest::{
    boot, copy_of_built_image, dns_until, memory_figure, poll, poweroff, shell, shell_output,
    start_serving,
};
use lan::check_lan;
use support::netns;

/// One QEMU at a time: the machine has two cores and the boot time is measured.
static QEMU: Mutex<()> = Mutex::new(());

#[test]
fn qemu_virt_serves_dns_and_http_and_keeps_data_across_reboot_and_power_cut() {
    let _one = QEMU.lock().unwrap_or_else(|e| e.into_inner());
    let dir = support::test_dir("qemu-virt");
    let image = copy_of_built_image("qemu-virt", &dir);
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
    first_boot_serves_and_writes_a_file(&b, &dir, &image);
    let client_ip = second_boot_serves_a_lan_client_then_loses_power(&b, &dir);
    third_boot_after_the_cut_has_the_files_and_the_lease(&b, &dir, &image, &client_ip);
    fourth_boot_recreates_a_destroyed_data_partition(&b, &dir, &image);
}

/// First boot, without a LAN NIC (boma retries eth1 in the background): serving (boot to
/// serving is a figure), data partition mounted, a file written, a clean shutdown, and the
/// partition clean.
fn first_boot_serves_and_writes_a_file(b: &Boot, dir: &Path, image: &Path) {
    let (mut g, served) = start_serving(b, &dir.join("console-1.txt"), None);
    support::figure(&format!(
        "qemu-virt boot to serving HTTP (QEMU start → 200 from /ping through the forwarded port, TCG, -smp 2): {:.2} s",
        served.as_secs_f64()
    ));
    api_dns_and_unrouted_names_answer_through_the_forwarded_ports(&g, b);
    console_shows_data_boma_and_the_wan_left_to_boma(&mut g);
    shell(
        &mut g,
        "grep ' /data ext4 rw' /proc/mounts && echo first-boot > /data/probe.txt && sync",
        100,
    );
    poweroff(&mut g);
    drop(g);
    support::fsck_data_partition(image, dir);
}

/// Through the forwarded ports: the API asks for credentials, the local zone answers with the
/// guest's WAN address over UDP and TCP, and an unrouted name gets a 404.
fn api_dns_and_unrouted_names_answer_through_the_forwarded_ports(g: &Guest, b: &Boot) {
    let (status, body) = http_get(
        b.http_port,
        "gateway.village.lan",
        "/api/version",
        Duration::from_secs(5),
    )
    .expect("api answers");
    // board/qemu-virt/boma.toml sets [admin] users: the API asks for them (the LAN client of
    // the second boot gives them).
    assert_eq!(status, 401, "{body}");
    // The local zone through the forwarded DNS port, UDP then TCP.
    let guest_ip = Ipv4Addr::new(10, 0, 2, 15);
    let want = (0, vec![guest_ip]);
    let udp = dns_until(b.dns_port, "gateway.village.lan", &want);
    assert_eq!(
        udp,
        Some(want.clone()),
        "DNS over UDP; console:\n{}",
        g.console()
    );
    let tcp = dns_a(
        b.dns_port,
        "gateway.village.lan",
        true,
        Duration::from_secs(5),
    );
    assert_eq!(tcp, Some(want), "DNS over TCP");
    let (status, _) = http_get(
        b.http_port,
        "unknown.village.lan",
        "/",
        Duration::from_secs(5),
    )
    .expect("answers");
    assert_eq!(status, 404, "unrouted names get Traefik's 404");
}

/// The console: /data mounted, boma started with /boot/boma.toml, and the WAN left to boma's
/// udhcpc (not init's); the guest's memory after boot is a figure.
fn console_shows_data_boma_and_the_wan_left_to_boma(g: &mut Guest) {
    let console = g.console();
    assert!(
        console.contains("on /data"),
        "data partition not mounted:\n{console}"
    );
    assert!(
        console.contains("starting boma with /boot/boma.toml"),
        "{console}"
    );
    memory_figure(g, "qemu-virt (256 MiB guest)");
    assert!(
        console.contains("boma-init: network: eth0 left to boma (/boot/boma.toml has [wan]")
            && console.contains("boma-init: DHCP lease 10.0.2.15/24 on eth0"),
        "the WAN is boma's udhcpc, not init's:\n{console}"
    );
}

/// Second boot, the gateway on a LAN: QEMU in a namespace of its own with eth1 on a tap bridged
/// to a client namespace, which asks for a lease from QEMU's start on ([`check_lan`]). The first
/// boot's file and the client's lease are on /data; another file is written, then the power is
/// cut. The client's address.
fn second_boot_serves_a_lan_client_then_loses_power(b: &Boot, dir: &Path) -> String {
    let mut lan = netns::Lan::new();
    let www = dir.join("www");
    std::fs::create_dir_all(&www).expect("www");
    let token = format!("through-nat-{}", std::process::id());
    std::fs::write(www.join("nat.txt"), format!("{token}\n")).expect("nat.txt");
    lan.serve_http(&www, 8000);
    let b2 = Boot {
        lan: Some(Lan::Tap(netns::TAP.into())),
        netns: Some(lan.qemu.name.clone()),
        ..b.clone()
    };
    let mut dhcp = netns::udhcpc(&lan, dir, 90);
    let (mut g, _) = start_serving(&b2, &dir.join("console-2.txt"), Some(&lan));
    let client_ip = check_lan(&g, &lan, &mut dhcp, &token, dir);
    drop(dhcp);
    // The file of the first boot is there; the lease is on the data partition; write another
    // file, then cut the power.
    let out = shell_output(
        &mut g,
        "cat /data/probe.txt /data/boma/leases && echo power-cut > /data/cut.txt && sync",
        200,
    );
    assert!(
        out.contains("\nfirst-boot"),
        "file lost across reboot:\n{}",
        g.console()
    );
    assert!(
        out.contains(&format!(" {client_ip} ")),
        "lease not in /data/boma/leases:\n{out}"
    );
    g.kill();
    drop(g);
    drop(lan);
    client_ip
}

/// Third boot after the kill, without a LAN NIC: the journal is replayed, both files and the
/// lease are there, boma serves (boot to serving is a figure) and the restored lease's name
/// resolves; after a clean shutdown the partition is clean.
fn third_boot_after_the_cut_has_the_files_and_the_lease(
    b: &Boot,
    dir: &Path,
    image: &Path,
    client_ip: &str,
) {
    let (mut g, served) = start_serving(b, &dir.join("console-3.txt"), None);
    support::figure(&format!(
        "qemu-virt boot to serving after a QEMU kill: {:.2} s",
        served.as_secs_f64()
    ));
    let out = shell_output(
        &mut g,
        "cat /data/probe.txt /data/cut.txt /data/boma/leases",
        300,
    );
    assert!(
        out.contains("\nfirst-boot") && out.contains("\npower-cut"),
        "files lost after power cut:\n{out}"
    );
    assert!(
        out.contains(&format!(" {client_ip} ")),
        "lease lost after power cut:\n{out}"
    );
    // The restored lease's name is in DNS before any client asks again (no LAN this boot).
    let ip: Ipv4Addr = client_ip.parse().expect("the client's address");
    let want = (0, vec![ip]);
    let named = dns_until(b.dns_port, "villager.village.lan", &want);
    assert_eq!(
        named,
        Some(want),
        "the restored lease's name; console:\n{}",
        g.console()
    );
    poweroff(&mut g);
    drop(g);
    support::fsck_data_partition(image, dir);
}

/// Fourth boot with the data partition destroyed (zeroed: no superblock, no label): e2fsck
/// cannot repair it, init recreates it from the boot partition's copy, says so (console and
/// /data/fsck.log), and the gateway comes up with an empty, writable, clean /data.
fn fourth_boot_recreates_a_destroyed_data_partition(b: &Boot, dir: &Path, image: &Path) {
    support::zero_range(image, DATA_START, DATA_SIZE);
    let (mut g, served) = start_serving(b, &dir.join("console-4.txt"), None);
    support::figure(&format!(
        "qemu-virt boot to serving with a destroyed data partition (recreated before boma starts): {:.2} s",
        served.as_secs_f64()
    ));
    let console = g.console();
    assert!(
        console.contains(
            "data partition /dev/vda2 could not be repaired by e2fsck (exit 8): recreating it empty"
        ),
        "{console}"
    );
    let out = shell_output(
        &mut g,
        "cat /data/fsck.log; ls /data/probe.txt; echo recreated > /data/new.txt && sync",
        400,
    );
    assert!(
        out.contains("recreated empty") && out.contains("No such file"),
        "fsck.log or the empty partition:\n{out}"
    );
    poweroff(&mut g);
    drop(g);
    support::fsck_data_partition(image, dir);
}

/// The last `ack <tag>-N` the guest printed: every write up to N was fsync'd before it.
fn last_ack(console: &str, tag: &str) -> u32 {
    let prefix = format!("ack {tag}-");
    console
        .lines()
        .filter_map(|l| l.trim().strip_prefix(&prefix)?.parse().ok())
        .max()
        .unwrap_or(0)
}

/// How many times the power-cut test cuts the power.
const ROUNDS: u32 = 4;

#[test]
fn qemu_virt_power_cuts_lose_no_acknowledged_write_then_wifi_serves_a_client() {
    let _one = QEMU.lock().unwrap_or_else(|e| e.into_inner());
    let dir = support::test_dir("power-cut");
    let image = copy_of_built_image("qemu-virt", &dir);
    let b = boot(
        Machine::Virt,
        &image,
        &dir,
        support::free_port(),
        support::free_port(),
    );
    let lan = netns::Lan::new();
    let b_lan = Boot {
        lan: Some(Lan::Tap(netns::TAP.into())),
        netns: Some(lan.qemu.name.clone()),
        ..b.clone()
    };
    let mut acked = Vec::new();
    let mut leases = Vec::new();
    for round in 1..=ROUNDS {
        let (ack, lease) = a_lease_and_writes_then_a_power_cut(round, &lan, &b_lan, &dir);
        acked.push(ack);
        leases.push(lease);
    }
    drop(lan);

    // After the last cut: every acknowledged line and every lease is there, in order.
    let (mut g, _) = start_serving(&b, &dir.join("console-after.txt"), None);
    every_acknowledged_line_and_lease_is_kept(&mut g, &acked, &leases);
    wifi::access_point_serves_a_wpa_client(&mut g);
    poweroff(&mut g);
    drop(g);
    support::fsck_data_partition(&image, &dir);
}

/// One round: a new client (its own MAC) gets a lease, which boma makes durable before it
/// answers; the guest appends numbered lines to /data/ack.log, fsyncing each (busybox `sync
/// FILE`) before it says `ack`; once it has said 20, the power is cut (QEMU killed, no sync)
/// while those writes go on. The round's tag with its last ack, and the lease's address.
fn a_lease_and_writes_then_a_power_cut(
    round: u32,
    lan: &netns::Lan,
    b_lan: &Boot,
    dir: &Path,
) -> ((String, u32), String) {
    let mac = format!("02:00:00:00:00:{round:02x}");
    for args in [
        &["ip", "link", "set", "eth0", "down"][..],
        &["ip", "link", "set", "eth0", "address", &mac],
        &["ip", "link", "set", "eth0", "up"],
    ] {
        lan.client.exec(args);
    }
    let mut dhcp = netns::udhcpc(lan, dir, 90);
    let console = dir.join(format!("console-cut-{round}.txt"));
    let (mut g, _) = start_serving(b_lan, &console, Some(lan));
    let writer = format!(
        "(i=0; while [ $i -lt 100000 ]; do i=$((i+1)); echo r{round}-$i >> /data/ack.log && sync /data/ack.log && echo ack r{round}-$i > /dev/console; usleep 10000; done) &"
    );
    g.send(&writer).expect("start the writer");
    let Some((lease, _)) = dhcp.wait(Duration::from_secs(90)) else {
        panic!("round {round}: no lease; console:\n{}", g.console());
    };
    drop(dhcp);
    let tag = format!("r{round}");
    let enough = poll(&g, Duration::from_secs(60), || {
        (last_ack(&g.console(), &tag) >= 20).then_some(())
    });
    assert!(
        enough.is_some(),
        "round {round}: writer stuck:\n{}",
        g.console()
    );
    let seen = last_ack(&g.console(), &tag);
    g.kill();
    ((tag, seen), lease.ip)
}

/// After the last cut, one boot finds every acknowledged line of each round in /data/ack.log, in
/// order, and every lease in /data/boma/leases (what was kept is a figure).
fn every_acknowledged_line_and_lease_is_kept(
    g: &mut Guest,
    acked: &[(String, u32)],
    leases: &[String],
) {
    let out = shell_output(g, "cat /data/ack.log /data/boma/leases", 500);
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    for (tag, seen) in acked {
        let got: Vec<u32> = lines
            .iter()
            .filter_map(|l| l.strip_prefix(&format!("{tag}-"))?.parse().ok())
            .collect();
        let want: Vec<u32> = (1..=*seen).collect();
        assert!(
            got.len() >= want.len() && got[..want.len()] == want[..],
            "{tag}: acknowledged 1..={seen}, found {got:?}"
        );
    }
    for ip in leases {
        assert!(out.contains(&format!(" {ip} ")), "lease {ip} lost:\n{out}");
    }
    support::figure(&format!(
        "power cuts during writes: {ROUNDS} rounds, acknowledged writes kept {:?}, {} leases kept",
        acked.iter().map(|(_, n)| n).collect::<Vec<_>>(),
        leases.len()
    ));
}

#[test]
fn raspi3b_finds_its_usb_network_adapter_by_alias_and_serves() {
    let _one = QEMU.lock().unwrap_or_else(|e| e.into_inner());
    let dir = support::test_dir("raspi3b");
    the_board_file_names_no_usb_network_driver();
    let image = copy_of_built_image("rpi3", &dir);
    // Through the Pi's U-Boot, as QEMU cannot run the Pi firmware: it reads the image's
    // uboot.env and boot.scr from the SD card, and boot.scr loads slot a from there.
    let mut b = boot(
        Machine::Raspi3b,
        &image,
        &dir,
        support::free_port(),
        support::free_port(),
    );
    b.uboot = true;
    let mut g = Guest::start(&b, &dir.join("console.txt")).expect("start qemu");
    the_pis_u_boot_boots_slot_a_to_ready(&mut g);
    the_usb_adapter_gets_its_drivers_and_a_lease(&mut g);
    http_api_and_dns_answer_over_the_usb_adapter(&mut g, &b);
    memory_figure(&mut g, "raspi3b, rpi3 image (1 GiB guest)");
    the_wifi_parts_unpack_and_run(&mut g);
    g.kill();
}

/// The drivers of the test's network, the USB host (dwc2) and the adapter (cdc_ether), must be
/// found by alias: neither may be named in the board file.
fn the_board_file_names_no_usb_network_driver() {
    let board = boma_image::board::Board::load(&support::root(), "rpi3").expect("board rpi3");
    for driver in ["dwc2", "cdc_ether", "phy_generic", "usbnet"] {
        assert!(
            !board.modules.iter().any(|m| m == driver),
            "board/rpi3/board.toml names {driver}"
        );
    }
}

/// The Pi's U-Boot loads the image's uboot.env and boot.scr, which boots slot a with the
/// firmware's command line, to boma's `ready` (QEMU start → ready is a figure).
fn the_pis_u_boot_boots_slot_a_to_ready(g: &mut Guest) {
    let ready = g.wait_for("\nready\n", 0, Duration::from_secs(180));
    let Some(ready) = ready else {
        panic!("no `ready` from boma on raspi3b; console:\n{}", g.console());
    };
    support::figure(&format!(
        "raspi3b (rpi3 image) QEMU start → boma ready on ttyS1: {:.2} s",
        ready.as_secs_f64()
    ));
    for said in [
        // The image's uboot.env from the SD card's FAT (mmc 0:1), whose bootcmd sources boot.scr.
        "Loading Environment from FAT... OK",
        "## Executing script at",
        "boma: command line from the firmware",
        "boma: booting slot a",
        "boma 0.1.0 running",
    ] {
        assert!(g.console().contains(said), "no {said:?}:\n{}", g.console());
    }
}

/// QEMU's usb-net behind dwc2 gets a DHCP lease on usb0 from QEMU's user network (QEMU start →
/// lease is a figure), with dwc2, its PHY and bcm2835 loaded at coldplug.
fn the_usb_adapter_gets_its_drivers_and_a_lease(g: &mut Guest) {
    // QEMU's usb-net behind dwc2: the lease from QEMU's user network on usb0, then boma's
    // proxy through the forwarded port.
    let lease = g.wait_for(
        "DHCP lease 10.0.2.15/24 on usb0",
        0,
        Duration::from_secs(120),
    );
    let Some(lease) = lease else {
        panic!("no DHCP lease on usb0; console:\n{}", g.console());
    };
    support::figure(&format!(
        "raspi3b: QEMU start → DHCP lease on the USB adapter (dwc2 + cdc_ether by alias): {:.2} s",
        lease.as_secs_f64()
    ));
    let console = g.console();
    let drivers = console
        .lines()
        .find(|l| l.contains("boma-init: drivers at "))
        .unwrap_or_else(|| panic!("no drivers line; console:\n{console}"));
    for driver in ["dwc2", "phy_generic", "bcm2835"] {
        assert!(
            drivers.split_whitespace().any(|w| w == driver),
            "{driver} not loaded at coldplug: {drivers}"
        );
    }
}

/// Through the forwarded ports: boma's proxy serves, the API only says how to set `[admin]
/// users` (safe by default), and the local zone answers with usb0's address.
fn http_api_and_dns_answer_over_the_usb_adapter(g: &mut Guest, b: &Boot) {
    let served = wait_http(
        g,
        b.http_port,
        "gateway.village.lan",
        "/ping",
        Duration::from_secs(60),
    );
    assert!(
        served.is_some(),
        "boma not reachable over the USB adapter; console:\n{}",
        g.console()
    );
    // Safe by default: the image's boma.toml sets no [admin] users, so the API and dashboard
    // answer only how to set them.
    let (status, body) = http_get(
        b.http_port,
        "gateway.village.lan",
        "/api/version",
        Duration::from_secs(5),
    )
    .expect("api answers");
    assert!(
        status == 403 && body.contains("[admin] users"),
        "{status} {body}"
    );
    // DNS is on by default: the local zone through the forwarded port 53 (QEMU's user network
    // delivers it from 10.0.2.2, on usb0's subnet), answered with usb0's address.
    let want = (0, vec![Ipv4Addr::new(10, 0, 2, 15)]);
    assert_eq!(
        dns_until(b.dns_port, "gateway.village.lan", &want),
        Some(want),
        "DNS on the rpi3 image; console:\n{}",
        g.console()
    );
}

/// The Wi-Fi parts unpack and run on the Pi's CPU: the radios' firmware, brcmfmac's SDIO
/// aliases, the signed regulatory database, hostapd, wpa_supplicant and iw.
fn the_wifi_parts_unpack_and_run(g: &mut Guest) {
    // Wi-Fi parts (QEMU has no SDIO radio), unpacked as boma.toml's [wifi] would have them:
    // the firmware the Pi 3 B and 3 B+ radios ask for under the names brcmfmac requests,
    // brcmfmac found by its SDIO aliases, cfg80211 loading Debian's signed regulatory database,
    // and Debian's hostapd and wpa_supplicant running on the Pi's CPU with their libraries.
    let out = shell_output(
        g,
        "boma-wifi-unpack; ls /lib/firmware/brcm /lib/firmware; \
         echo brcmfmac-aliases=$(grep -c '^alias sdio:.* brcmfmac$' /lib/modules/*/modules.alias); \
         modprobe cfg80211 && sleep 1 && dmesg | grep -i -E 'regulatory|regdb'; \
         hostapd -v 2>&1 | head -1; wpa_supplicant -v | head -1; iw --version",
        800,
    );
    for file in [
        "brcmfmac43430-sdio.bin",
        "brcmfmac43430-sdio.raspberrypi,3-model-b.txt",
        "brcmfmac43455-sdio.raspberrypi,3-model-b-plus.txt",
        "regulatory.db.p7s",
        "hostapd v2.10",
        "wpa_supplicant v2.10",
        "iw version 5.19",
    ] {
        assert!(out.contains(file), "{file} missing:\n{out}");
    }
    assert!(
        !out.contains("malformed") && !out.contains("failed to load"),
        "regulatory database refused:\n{out}"
    );
    let aliases: u32 = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("brcmfmac-aliases=")?.parse().ok())
        .unwrap_or(0);
    assert!(aliases > 0, "no sdio: aliases of brcmfmac:\n{out}");
}
