//! Updates end to end on qemu-virt, booted through Debian's U-Boot (`-bios`) from the disk
//! image; boma's kernel is never given to QEMU, and a guest reboot is a reboot (QEMU keeps
//! running), so every switch is U-Boot's work with the image's `boot.scr` and A/B state.
//!
//! One guest, one run:
//! 1. Version 1 boots from slot a, committed. Refusals over the forwarded admin port (no
//!    credentials, another key's signature, another board, an older version, a truncated bundle):
//!    each with its status and reason, and nothing switched.
//! 2. A good update: version 2 posted, the guest reboots into slot b on trial, serves, commits
//!    itself; a further reboot stays on 2.
//! 3. A bad update: a bundle whose boma exits at start (`make bundle BREAK=1`). The guest boots
//!    it on trial, fails, tries again, and U-Boot goes back to slot b by itself; the API says the
//!    update failed.
//! 4. Power cuts: QEMU killed at random points of the upload and of the switch (the reboot and
//!    the trial boot), in several rounds; each time the next boot serves a whole version.
//!
//! Figures (target/image-test/figures.txt): the bundle's size, boot to serving through U-Boot,
//! upload to serving the new version, boma's peak RSS before and after the upload.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use boma_image::build::{Options, bundle};
use boma_image::bundle::Written;
use boma_image::qemu::{Boot, Guest, Machine};

/// `admin:village`, the qemu-virt board's test user.
const AUTH: &str = "Basic YWRtaW46dmlsbGFnZQ==";
const HOST: &str = "gateway.village.lan";

/// One HTTP/1.0 exchange with the guest through the forwarded port: status and body.
fn exchange(port: u16, head: &str, body: &[u8], timeout: Duration) -> Option<(u16, String)> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, timeout).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    s.set_write_timeout(Some(timeout)).ok()?;
    s.write_all(head.as_bytes()).ok()?;
    s.write_all(body).ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, text.split_once("\r\n\r\n")?.1.to_string()))
}

fn post(port: u16, bundle: &[u8], auth: bool) -> Option<(u16, String)> {
    let auth = if auth {
        format!("Authorization: {AUTH}\r\n")
    } else {
        String::new()
    };
    let head = format!(
        "POST /api/update HTTP/1.0\r\nHost: {HOST}\r\n{auth}Content-Length: {}\r\n\r\n",
        bundle.len()
    );
    exchange(port, &head, bundle, Duration::from_secs(120))
}

/// `/api/version` as JSON text, when the guest answers.
fn version(port: u16) -> Option<String> {
    let head =
        format!("GET /api/version HTTP/1.0\r\nHost: {HOST}\r\nAuthorization: {AUTH}\r\n\r\n");
    match exchange(port, &head, b"", Duration::from_secs(3)) {
        Some((200, body)) => Some(body),
        _ => None,
    }
}

/// Poll `/api/version` until `want` holds for it: the body, or a panic with the console.
fn version_until(
    g: &mut Guest,
    port: u16,
    what: &str,
    limit: Duration,
    want: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + limit;
    let mut last = None;
    while Instant::now() < deadline {
        if let Some(v) = version(port) {
            if want(&v) {
                return v;
            }
            last = Some(v);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let tail: String = (g
        .console()
        .chars()
        .rev()
        .take(6000)
        .collect::<Vec<_>>()
        .into_iter()
        .rev())
    .collect();
    panic!("{what}: not reached in {limit:?}; last /api/version: {last:?}; console tail:\n{tail}");
}

fn has(v: &str, field: &str, value: &str) -> bool {
    v.contains(&format!("\"{field}\":\"{value}\""))
}

/// Running `version` from `slot`, committed.
fn committed(v: &str, version: &str, slot: &str) -> bool {
    has(v, "Version", version) && has(v, "slot", slot) && has(v, "state", "committed")
}

/// Running `version` from `slot`, nothing on trial (the last update may have failed).
fn settled(v: &str, version: &str, slot: &str) -> bool {
    has(v, "Version", version)
        && has(v, "slot", slot)
        && (has(v, "state", "committed") || has(v, "state", "failed"))
}

/// Peak and current RSS of boma in the guest (KiB), from its /proc status, via the console.
fn boma_rss(g: &mut Guest, tag: u32) -> (u64, u64) {
    let from = g.console().len();
    g.send(&format!(
        "grep -E 'VmHWM|VmRSS' /proc/$(pidof boma)/status; echo RSS-$(({tag} + 1))"
    ))
    .expect("console");
    let done = format!("RSS-{}", tag + 1);
    assert!(
        g.wait_for(&done, from, Duration::from_secs(20)).is_some(),
        "{}",
        g.console()
    );
    let out = g.console()[from..].to_string();
    let kib = |key: &str| -> u64 {
        out.lines()
            .find_map(|l| l.trim().strip_prefix(key))
            .and_then(|r| r.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {key} in:\n{out}"))
    };
    (kib("VmHWM:"), kib("VmRSS:"))
}

fn options(dir: &Path, version: &str, broken: bool) -> Options {
    let mut o = Options::new(&support::root(), "qemu-virt");
    o.boma = support::boma_binary();
    o.out = dir.to_path_buf();
    o.compress = false;
    o.version = version.to_string();
    o.broken = broken;
    o
}

/// A small xorshift, seeded from the clock (or `BOMA_CUT_SEED`) and printed, for the power-cut
/// points.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// Send the first `cut` bytes of an upload of `bundle`, then cut the power.
fn upload_then_cut(g: &mut Guest, port: u16, bundle: &[u8], cut: usize) {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    let head = format!(
        "POST /api/update HTTP/1.0\r\nHost: {HOST}\r\nAuthorization: {AUTH}\r\nContent-Length: {}\r\n\r\n",
        bundle.len()
    );
    s.write_all(head.as_bytes()).expect("head");
    for chunk in bundle[..cut].chunks(64 * 1024) {
        if s.write_all(chunk).is_err() {
            break;
        }
    }
    // Give the guest a moment to take in what was sent, then cut.
    std::thread::sleep(Duration::from_millis(300));
    g.kill();
}

/// What the phases share: the test folder, the boot through U-Boot from a copy of version 1's
/// image, its forwarded HTTP port, and the bundles of version 2 (good) and 3 (`BREAK`).
struct Run {
    dir: PathBuf,
    boot: Boot,
    port: u16,
    good: Written,
    good_bytes: Vec<u8>,
    bad_bytes: Vec<u8>,
}

/// Build version 1's image and the two bundles (the bundle's size is a figure), and the boot
/// from a copy of the image.
fn prepare(dir: PathBuf) -> Run {
    let v1 = boma_image::build::build(&options(&dir, "1", false)).expect("image, version 1");
    let good = bundle(&options(&dir, "2", false)).expect("bundle 2");
    let bad = bundle(&options(&dir, "3", true)).expect("bundle 3, BREAK");
    let good_bytes = std::fs::read(&good.path).expect("bundle 2");
    let bad_bytes = std::fs::read(&bad.path).expect("bundle 3");
    support::figure(&format!(
        "update bundle, qemu-virt: {:.1} MiB (kernel, initramfs and Wi-Fi archive, gzip -9)",
        good.size as f64 / 1048576.0
    ));
    let image = dir.join("disk.img");
    std::fs::copy(&v1.image, &image).expect("copy image");
    let boot = Boot {
        machine: Machine::Virt,
        image: image.clone(),
        workdir: dir.join("qemu"),
        http_port: support::free_port(),
        dns_port: support::free_port(),
        append: String::new(),
        lan: None,
        netns: None,
        interactive: false,
        uboot: true,
    };
    let port = boot.http_port;
    Run {
        dir,
        boot,
        port,
        good,
        good_bytes,
        bad_bytes,
    }
}

#[test]
fn qemu_virt_updates_through_u_boot_rolls_back_a_bad_one_and_survives_power_cuts() {
    let run = prepare(support::test_dir("update"));
    let mut g = Guest::start(&run.boot, &run.dir.join("console-1.txt")).expect("qemu");
    version_1_boots_from_slot_a_through_u_boot(&mut g, run.port);
    refused_bundles_switch_nothing(&mut g, &run);
    good_update_is_tried_committed_and_kept(&mut g, &run);
    bad_update_is_rolled_back_by_u_boot(&mut g, &run);
    power_cuts_leave_a_whole_version(&mut g, &run);
}

/// 1. Version 1 serves from slot a, committed, booted by U-Boot's script; `boma version` says
///    what `make image VERSION=1` stamped.
fn version_1_boots_from_slot_a_through_u_boot(g: &mut Guest, port: u16) {
    version_until(
        g,
        port,
        "version 1 serving",
        Duration::from_secs(120),
        |v| committed(v, "1", "a"),
    );
    let served = g.started.elapsed();
    support::figure(&format!(
        "qemu-virt through U-Boot (2 s autoboot delay included): QEMU start → /api/version answers: {:.2} s",
        served.as_secs_f64()
    ));
    for said in ["Found U-Boot script /boot.scr", "boma: booting slot a"] {
        assert!(g.console().contains(said), "no {said:?}:\n{}", g.console());
    }
    // The image's version, as `make image VERSION=1` stamped it.
    let from = g.console().len();
    g.send("boma version").expect("console");
    assert!(
        g.wait_for(
            "1 (boma 0.1.0, board qemu-virt, slot a)",
            from,
            Duration::from_secs(20)
        )
        .is_some(),
        "{}",
        &g.console()[from..]
    );
}

/// 1. Refusals (no credentials, another key, another board, an older version, a truncated
///    bundle), each with its status and reason; version 1 stays committed with nothing on trial.
///    boma's peak RSS before and after them is a figure.
fn refused_bundles_switch_nothing(g: &mut Guest, run: &Run) {
    let port = run.port;
    let good_bytes = &run.good_bytes;
    let other_key = {
        let pkcs8 =
            ring::signature::Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
                .unwrap();
        ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap()
    };
    let mut foreign = good_bytes.clone();
    boma_image::bundle::resign(&mut foreign, &other_key).expect("resign");
    let dev_key = boma_image::sign::load(&options(&run.dir, "1", false).key).expect("dev key");
    let tiny = |board: &str, version: &str| {
        let m = boma_image::bundle::Manifest {
            board: board.into(),
            version: version.into(),
            created: 0,
        };
        let files = vec![
            ("vmlinuz".to_string(), b"k".to_vec()),
            ("initrd.img".to_string(), b"i".to_vec()),
        ];
        boma_image::bundle::encode(&m, &files, &dev_key).expect("tiny bundle")
    };
    let (hwm_before, _) = boma_rss(g, 10);
    let refusals: [(&str, Vec<u8>, bool, u16, &str); 5] = [
        // Small: a refused client is not read to the end (nor kept connected).
        (
            "no credentials",
            tiny("qemu-virt", "9"),
            false,
            401,
            "Unauthorized",
        ),
        ("another key", foreign, true, 403, "signature"),
        ("another board", tiny("rpi4", "9"), true, 422, "board rpi4"),
        (
            "an older version",
            tiny("qemu-virt", "0.9"),
            true,
            422,
            "older",
        ),
        (
            "truncated",
            good_bytes[..good_bytes.len() / 3].to_vec(),
            true,
            400,
            "ends early",
        ),
    ];
    for (what, body, auth, status, says) in refusals {
        let r = post(port, &body, auth).unwrap_or_else(|| panic!("{what}: no answer"));
        assert!(r.0 == status && r.1.contains(says), "{what}: {r:?}");
    }
    let v = version(port).expect("version");
    assert!(
        committed(&v, "1", "a") && !v.contains("trial"),
        "after refusals: {v}"
    );
    // The truncated one streamed a third of the bundle through the check and into slot b's
    // `.new` files before it was refused: what an upload costs boma in memory.
    let (hwm_after, rss) = boma_rss(g, 20);
    support::figure(&format!(
        "qemu-virt update: boma's peak RSS {hwm_before} KiB before the uploads, {hwm_after} KiB after them (+{} KiB; current {rss} KiB)",
        hwm_after.saturating_sub(hwm_before)
    ));
}

/// 2. The good update: the guest reboots into slot b on trial, serves version 2, commits it,
///    and a further reboot stays on it (no trial boot).
fn good_update_is_tried_committed_and_kept(g: &mut Guest, run: &Run) {
    let port = run.port;
    let from = g.console().len();
    let sent = Instant::now();
    let r = post(port, &run.good_bytes, true).expect("upload answered");
    let received = sent.elapsed();
    assert!(
        r.0 == 200 && r.1.contains(r#""slot":"b""#),
        "good update: {r:?}"
    );
    assert!(
        g.wait_for("boma: trial boot of slot b", from, Duration::from_secs(90))
            .is_some(),
        "{}",
        g.console()
    );
    version_until(
        g,
        port,
        "version 2 on trial",
        Duration::from_secs(120),
        |v| has(v, "Version", "2") && has(v, "slot", "b"),
    );
    let back = sent.elapsed();
    support::figure(&format!(
        "qemu-virt update: upload of {:.1} MiB checked and written in {:.1} s; upload start → version 2 serving (reboot through U-Boot included): {:.1} s",
        run.good.size as f64 / 1048576.0,
        received.as_secs_f64(),
        back.as_secs_f64()
    ));
    version_until(
        g,
        port,
        "version 2 committed",
        Duration::from_secs(60),
        |v| committed(v, "2", "b"),
    );
    let from = g.console().len();
    g.send("reboot").expect("console");
    assert!(
        g.wait_for("boma: booting slot b", from, Duration::from_secs(90))
            .is_some(),
        "{}",
        g.console()
    );
    assert!(
        !g.console()[from..].contains("trial boot"),
        "{}",
        &g.console()[from..]
    );
    version_until(
        g,
        port,
        "version 2 after a reboot",
        Duration::from_secs(120),
        |v| committed(v, "2", "b"),
    );
}

/// 3. The bad update: its boma exits at start; two trial boots of slot a, then U-Boot goes back
///    to slot b by itself and the API says version 3 failed.
fn bad_update_is_rolled_back_by_u_boot(g: &mut Guest, run: &Run) {
    let port = run.port;
    let from = g.console().len();
    let r = post(port, &run.bad_bytes, true).expect("bad upload answered");
    assert!(
        r.0 == 200 && r.1.contains(r#""slot":"a""#),
        "bad update: {r:?}"
    );
    assert!(
        g.wait_for(
            "used up its trial boots; back to slot b",
            from,
            Duration::from_secs(300)
        )
        .is_some(),
        "no rollback:\n{}",
        &g.console()[from..]
    );
    let trials = g.console()[from..]
        .matches("boma: trial boot of slot a")
        .count();
    assert_eq!(trials, 2, "{}", &g.console()[from..]);
    assert!(
        g.console()[from..].contains("exits at start on purpose"),
        "{}",
        &g.console()[from..]
    );
    let v = version_until(
        g,
        port,
        "back on version 2",
        Duration::from_secs(120),
        |v| has(v, "Version", "2") && has(v, "slot", "b") && has(v, "state", "failed"),
    );
    assert!(has(&v, "version", "3"), "the failed version: {v}");
}

/// 4. Power cuts in four rounds, alternately during the upload and during the switch, at random
///    points (the seed is printed): each time the next boot serves a whole version 2.
fn power_cuts_leave_a_whole_version(g: &mut Guest, run: &Run) {
    // BOMA_CUT_SEED replays a run's cut points (a failing run prints its seed).
    let seed = std::env::var("BOMA_CUT_SEED")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        })
        | 1;
    eprintln!("power cuts: seed {seed} (BOMA_CUT_SEED={seed} replays them)");
    let mut rng = Rng(seed);
    let mut running = ("2", "b");
    for round in 0..4 {
        let log = run.dir.join(format!("console-cut{round}.txt"));
        if round % 2 == 0 {
            cut_during_the_upload(g, run, &mut rng, round, &log, running);
        } else {
            running = cut_during_the_switch(g, run, &mut rng, round, &log, running);
        }
    }
}

/// A cut part way through an upload: the next boot serves the `running` (version, slot) as it
/// was.
fn cut_during_the_upload(
    g: &mut Guest,
    run: &Run,
    rng: &mut Rng,
    round: u32,
    log: &Path,
    running: (&str, &str),
) {
    let (port, good_bytes) = (run.port, &run.good_bytes);
    let cut = 1 + rng.below(good_bytes.len() as u64 - 1) as usize;
    eprintln!(
        "round {round}: cut after {cut} of {} bytes",
        good_bytes.len()
    );
    upload_then_cut(g, port, good_bytes, cut);
    *g = Guest::start(&run.boot, log).expect("qemu");
    let (v, s) = running;
    version_until(
        g,
        port,
        "serving after a cut upload",
        Duration::from_secs(120),
        |x| settled(x, v, s),
    );
}

/// A cut after the upload was answered, within the reboot or the trial boot: the next boot
/// serves version 2 from the new slot (which then commits) or from the old one. The slot now
/// running.
fn cut_during_the_switch(
    g: &mut Guest,
    run: &Run,
    rng: &mut Rng,
    round: u32,
    log: &Path,
    running: (&'static str, &'static str),
) -> (&'static str, &'static str) {
    let port = run.port;
    let r = post(port, &run.good_bytes, true).expect("upload answered");
    assert_eq!(r.0, 200, "{r:?}");
    let delay = Duration::from_millis(rng.below(12_000));
    eprintln!("round {round}: cut {delay:?} after the upload was answered");
    std::thread::sleep(delay);
    g.kill();
    *g = Guest::start(&run.boot, log).expect("qemu");
    // Version 2 either way: the new slot on trial (or committed), or the old one.
    let v = version_until(
        g,
        port,
        "serving after a cut switch",
        Duration::from_secs(180),
        |x| has(x, "Version", "2"),
    );
    let new_slot = if running.1 == "a" { "b" } else { "a" };
    if has(&v, "slot", new_slot) {
        version_until(
            g,
            port,
            "the new slot committed",
            Duration::from_secs(60),
            |x| committed(x, "2", new_slot),
        );
        ("2", new_slot)
    } else {
        version_until(
            g,
            port,
            "the old slot serving",
            Duration::from_secs(300),
            |x| settled(x, "2", running.1),
        );
        running
    }
}
