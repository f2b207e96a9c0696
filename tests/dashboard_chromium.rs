//! The dashboard in a real browser: headless Chromium (Debian's `chromium`, installed by
//! `make deps`) loads it over HTTPS from a router of the operator's, behind `[admin] users`,
//! with boma's local CA trusted in the browser's own certificate store (NSS, `certutil`), as a
//! village phone would after installing it once. boma runs as a gateway in its own network
//! namespace, with a LAN bridge and its DHCP server; a real client (busybox `udhcpc`) takes a
//! lease first, and Chromium runs in the gateway's namespace. The test waits for the routers,
//! the lease, the local DNS names and the (absent) Docker engine's state to render, checks their
//! text and natural order, that neither a laptop's nor a phone's window is scrolled sideways
//! (the page reports its own overflow), and keeps a screenshot in `target/test-artifacts/`
//! (the one in `docs/` is a copy).

mod net_support;
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use net_support::{Leased, Netns, cable, udhcpc, wait_for};
use support::Boma;

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?} ({e}); run `make deps`"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Headless Chromium in the gateway's namespace, with `home` as its HOME (its NSS store) and
/// `boma.village.lan` mapped to loopback; `args` decide what it does with `url`.
fn chromium(gw: &Netns, home: &Path, url: &str, args: &[&str]) -> String {
    let profile = home.join("profile");
    let mut cmd = gw.command("chromium");
    cmd.env("HOME", home)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            "--host-resolver-rules=MAP boma.village.lan 127.0.0.1",
            // Long enough for the page's API calls; virtual time, so never a wall-clock wait.
            "--virtual-time-budget=8000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url);
    run(&mut cmd)
}

/// A GET from inside the gateway's namespace (`curl`), its body when it answered 2xx.
fn curl(gw: &Netns, args: &[&str]) -> Option<String> {
    let mut full = vec!["curl", "-sf", "--max-time", "5"];
    full.extend_from_slice(args);
    let out = gw.try_exec(&full);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// boma as a gateway: `web`, `websecure` with certificates from the local CA stored under
/// `storage`, `[admin] users`, the LAN bridge `br0` over `p1` with its DHCP server, the local
/// zone, and a Docker engine that is not there.
fn static_toml(storage: &Path) -> String {
    format!(
        r#"
[entryPoints.web]
address = "127.0.0.1:0"
[entryPoints.websecure]
address = "127.0.0.1:0"
[entryPoints.websecure.http.tls]
certResolver = "village"
[certificatesResolvers.village.localCA]
storage = "{}"
domains = ["village.lan"]
[admin]
users = ["admin:{{SHA}}5en6G6MezRroT3XKqkdPOmY/BfQ="]
[lan]
interface = "br0"
address = "10.77.0.1/24"
bridge = ["p1"]
[dhcp]
range = ["10.77.0.100", "10.77.0.120"]
lease_time = "1h"
state_dir = "{{dir}}/state"
[dns]
listen = ["127.0.0.1:0"]
zone = "village.lan"
address = "127.0.0.1"
upstreams = []
[providers.file]
filename = "{{dir}}/dynamic.toml"
[providers.docker]
endpoint = "unix://{{dir}}/no-docker.sock"
"#,
        storage.join("ca").display()
    )
}

/// The dashboard and its API on `websecure`, the CA on `web`, and two app routers whose names
/// sort differently as text and naturally. The app's server need not answer: the dashboard
/// lists routers, it does not call them.
const DYNAMIC: &str = r#"
[http.routers.dash]
rule = "Host(`boma.village.lan`)"
service = "dashboard@internal"
entryPoints = ["websecure"]
[http.routers.dashapi]
rule = "Host(`boma.village.lan`) && PathPrefix(`/api`)"
service = "api@internal"
entryPoints = ["websecure"]
[http.routers.ca]
rule = "Host(`ca.village.lan`)"
service = "localca@internal"
entryPoints = ["web"]
[http.routers.r10]
rule = "Host(`r10.village.lan`)"
service = "app"
[http.routers.r2]
rule = "Host(`r2.village.lan`)"
service = "app"
[[http.services.app.loadBalancer.servers]]
url = "http://127.0.0.1:9"
"#;

#[test]
fn the_dashboard_renders_in_chromium_over_https_with_the_local_ca() {
    let gw = Netns::new("dash");
    let laptop = Netns::new("lap");
    cable(&gw, "p1", &laptop, "eth0", None);
    let storage = tempfile::tempdir().unwrap();
    let boma = Boma::start_in(Some(&gw.name), &static_toml(storage.path()), Some(DYNAMIC));
    let dir = boma.dir.path().to_path_buf();

    let (home, ca_file) = the_browser_trusts_the_local_ca(&gw, &boma);
    let lease = the_api_lists_a_laptops_lease(&gw, &laptop, &boma, &dir, &ca_file);
    let port = boma.addr("websecure").port();
    let url = format!("https://admin:secret@boma.village.lan:{port}/dashboard/");
    let dom = a_laptops_and_a_phones_window_are_not_scrolled_sideways(&gw, home.path(), &url);
    routers_lease_zone_and_engine_are_rendered(&dom, &lease);
    the_phone_screenshot_is_kept(&gw, home.path(), &url);
}

/// The CA as a phone gets it from ca.village.lan (once the routers are in), trusted in the
/// browser's NSS store: the browser's HOME, and the CA's file in it.
fn the_browser_trusts_the_local_ca(gw: &Netns, boma: &Boma) -> (tempfile::TempDir, PathBuf) {
    let web = boma.addr("web");
    let ca = wait_for(Duration::from_secs(20), || {
        let pem = curl(
            gw,
            &["-H", "Host: ca.village.lan", &format!("http://{web}/")],
        )?;
        pem.starts_with("-----BEGIN CERTIFICATE").then_some(pem)
    })
    .expect("the local CA is served on ca.village.lan");
    let home = tempfile::tempdir().unwrap();
    let ca_file = home.path().join("village-ca.crt");
    std::fs::write(&ca_file, &ca).unwrap();
    let nssdb = home.path().join(".pki/nssdb");
    std::fs::create_dir_all(&nssdb).unwrap();
    let db = format!("sql:{}", nssdb.display());
    run(Command::new("certutil").args(["-d", &db, "-N", "--empty-password"]));
    run(Command::new("certutil")
        .args(["-d", &db, "-A", "-t", "C,,", "-n", "village CA", "-i"])
        .arg(&ca_file));
    (home, ca_file)
}

/// A laptop on the LAN takes a lease (`udhcpc`); the API lists it, over HTTPS with the CA,
/// before the browser looks.
fn the_api_lists_a_laptops_lease(
    gw: &Netns,
    laptop: &Netns,
    boma: &Boma,
    dir: &Path,
    ca_file: &Path,
) -> Leased {
    let lease = udhcpc(laptop, "eth0", "laptop-7", dir).expect("udhcpc gets a lease");
    let port = boma.addr("websecure").port();
    let leases_url = format!("https://boma.village.lan:{port}/api/dhcp/leases");
    let resolve = format!("boma.village.lan:{port}:127.0.0.1");
    let listed = wait_for(Duration::from_secs(10), || {
        let body = curl(
            gw,
            &[
                "--cacert",
                ca_file.to_str()?,
                "--resolve",
                &resolve,
                "-u",
                "admin:secret",
                &leases_url,
            ],
        )?;
        body.contains("laptop-7").then_some(())
    });
    assert!(listed.is_some(), "the lease of {lease:?} is not in the API");
    lease
}

/// The page reports no overflow in a laptop's window (1280 px) nor in a phone's (412 px, rows
/// as cards). The phone's DOM.
fn a_laptops_and_a_phones_window_are_not_scrolled_sideways(
    gw: &Netns,
    home: &Path,
    url: &str,
) -> String {
    // A laptop's width first: everything fits.
    let wide = chromium(gw, home, url, &["--window-size=1280,2000", "--dump-dom"]);
    assert!(
        wide.contains("data-overflow=\"no\""),
        "wider than 1280 px:\n{wide}"
    );
    let dom = chromium(gw, home, url, &["--window-size=412,2400", "--dump-dom"]);
    // A phone's: rows are cards, nothing scrolls sideways.
    assert!(
        dom.contains("data-overflow=\"no\""),
        "wider than 412 px:\n{dom}"
    );
    dom
}

/// The rendered page: the version from the API, the routers in natural order, the zone, the
/// laptop's lease and its name, the absent Docker engine, and the dashboard's own certificate.
fn routers_lease_zone_and_engine_are_rendered(dom: &str, lease: &Leased) {
    // The header line says what the API said (the script's own text also holds the error
    // message, so the rendered span is what is read).
    let meta = dom
        .split("<span id=\"meta\">")
        .nth(1)
        .and_then(|m| m.split('<').next());
    let version = format!("v{}", env!("CARGO_PKG_VERSION"));
    assert!(meta.is_some_and(|m| m.starts_with(&version)), "{meta:?}");
    for text in [
        "r2@file",
        "r10@file",
        "Host(`r2.village.lan`)",
        "r10.village.lan",
        "the gateway",
    ] {
        assert!(dom.contains(text), "{text} not rendered:\n{dom}");
    }
    // Natural order: r2 before r10 (a plain string sort puts r10 first).
    let (r2, r10) = (dom.find("r2@file").unwrap(), dom.find("r10@file").unwrap());
    assert!(r2 < r10, "r2 is listed after r10");
    assert!(dom.contains("zone village.lan"), "{dom}");
    // The laptop's lease, and its name in the local zone.
    let leases = (dom.split("<tbody id=\"leases\">").nth(1))
        .and_then(|t| t.split("</tbody>").next())
        .unwrap_or("");
    assert!(
        leases.contains("laptop-7") && leases.contains(&lease.ip),
        "lease not rendered: {leases:?}"
    );
    assert!(
        dom.contains("laptop-7.village.lan"),
        "the lease's DNS name is not listed"
    );
    // The Docker engine named in the config, which is not there, in its own table.
    let engines = (dom.split("<tbody id=\"engines\">").nth(1))
        .and_then(|t| t.split("</tbody>").next())
        .unwrap_or("");
    assert!(
        engines.contains("no-docker.sock") && engines.contains("unreachable"),
        "engine state not rendered: {engines:?}"
    );
    assert!(
        dom.contains("local CA"),
        "the certificate issued for the dashboard:\n{dom}"
    );
}

/// A phone's screenshot is written as a PNG to `target/test-artifacts/dashboard-phone.png`.
fn the_phone_screenshot_is_kept(gw: &Netns, home: &Path, url: &str) {
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join("dashboard-phone.png");
    let _ = std::fs::remove_file(&shot);
    chromium(
        gw,
        home,
        url,
        &[
            "--window-size=412,1800",
            &format!("--screenshot={}", shot.display()),
        ],
    );
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
}
