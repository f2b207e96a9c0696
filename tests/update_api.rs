//! Updates through the real API on a real boma process, against a folder standing in for the
//! boot partition: bundles signed by the image builder's writer, uploaded with HTTP, checked,
//! written into the other slot and switched to (or refused with nothing written); and the
//! trial's commit once the new slot has served. The QEMU test (image/tests/qemu_update.rs) does
//! the same through U-Boot with real reboots.

mod support;

use std::path::Path;
use std::time::Duration;

use boma_image::bundle::{Manifest, encode};
use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use ring::signature::Ed25519KeyPair;
use support::{Boma, Client, Resp, eventually};

/// `admin:village`.
const USERS: &str = r#"users = ["admin:{SHA}O9w+xoK/u0cUIpJfmnH8Z+bAyjw="]"#;
const AUTH: &str = "Basic YWRtaW46dmlsbGFnZQ==";

fn key() -> Ed25519KeyPair {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
    Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap()
}

fn files(tag: &str) -> Vec<(String, Vec<u8>)> {
    // Sizes past one inflate buffer, so a file spans many reads.
    vec![
        (
            "vmlinuz".into(),
            format!("kernel {tag} ").repeat(20_000).into_bytes(),
        ),
        (
            "initrd.img".into(),
            format!("initrd {tag} ").repeat(9_000).into_bytes(),
        ),
    ]
}

fn bundle(board: &str, version: &str, key: &Ed25519KeyPair) -> Vec<u8> {
    let m = Manifest {
        board: board.into(),
        version: version.into(),
        created: 1,
    };
    encode(&m, &files(version), key).unwrap()
}

/// A signed bundle of 3 MiB that does not compress, over the gateway's 2 MiB max_bundle.
fn too_big(key: &Ed25519KeyPair) -> Vec<u8> {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let noise: Vec<u8> = (0..3 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let m = Manifest {
        board: "test".into(),
        version: "2".into(),
        created: 1,
    };
    let files = vec![
        ("vmlinuz".to_string(), noise),
        ("initrd.img".to_string(), b"i".to_vec()),
    ];
    encode(&m, &files, key).unwrap()
}

/// A gateway running slot `slot`, version 1 of board `test`, with `<setup>/boot` as its boot
/// partition (`prepare` fills it first).
struct Gateway {
    boma: Boma,
    setup: tempfile::TempDir,
}

fn gateway(key: &Ed25519KeyPair, slot: &str, prepare: impl FnOnce(&Path)) -> Gateway {
    gateway_committing_after(key, slot, "1s", prepare)
}

fn gateway_committing_after(
    key: &Ed25519KeyPair,
    slot: &str,
    commit_after: &str,
    prepare: impl FnOnce(&Path),
) -> Gateway {
    let setup = tempfile::tempdir().unwrap();
    let boot = setup.path().join("boot");
    std::fs::create_dir_all(&boot).unwrap();
    std::fs::write(setup.path().join("release"), "board=test\nversion=1\n").unwrap();
    std::fs::write(
        setup.path().join("update.pub"),
        boma_image::sign::public_hex(key),
    )
    .unwrap();
    prepare(&boot);
    let s = setup.path().display();
    let toml = format!(
        r#"
[entryPoints.web]
address = "127.0.0.1:0"
[entryPoints.traefik]
address = "127.0.0.1:0"
[api]
insecure = true
[admin]
{USERS}
[providers.file]
filename = "{{dir}}/dynamic.toml"
[update]
boot = "{s}/boot"
release = "{s}/release"
public_key = "{s}/update.pub"
slot = "{slot}"
reboot = false
commit_after = "{commit_after}"
committed_marker = "{s}/committed"
max_bundle = 2097152
"#
    );
    let dynamic = r#"
[http.routers.api]
rule = "Host(`gw.test`)"
service = "api@internal"
entryPoints = ["web"]
"#;
    Gateway {
        boma: Boma::start(&toml, Some(dynamic)),
        setup,
    }
}

async fn upload(c: &Client, g: &Gateway, ep: &str, body: Vec<u8>, auth: bool, query: &str) -> Resp {
    let mut r = Request::builder()
        .method("POST")
        .uri(format!("http://{}/api/update{query}", g.boma.addr(ep)))
        .header("host", "gw.test");
    if auth {
        r = r.header("authorization", AUTH);
    }
    c.send(r.body(Full::new(Bytes::from(body))).unwrap()).await
}

/// `GET /api/version` with the admin's credentials.
async fn api_version(c: &Client, g: &Gateway) -> Resp {
    let auth = [("authorization", AUTH)];
    (c.request(g.boma.addr("web"), "GET", "gw.test", "/api/version", &auth)).await
}

fn boot_of(g: &Gateway) -> std::path::PathBuf {
    g.setup.path().join("boot")
}

fn state(b: &Gateway) -> boma::update::AbState {
    boma::update::StateFiles::new(&boot_of(b))
        .read()
        .map(|(s, _)| s)
        .unwrap_or_default()
}

#[tokio::test]
async fn bundles_are_checked_then_written_to_the_other_slot_and_switched_to() {
    let k = key();
    let b = gateway(&k, "a", |_| {});
    let c = Client::new();
    b.boma.routed(&c, "gw.test", "/api/version").await;
    let good = bundle("test", "2", &k);

    refusals_write_nothing_and_switch_nothing(&c, &b, &k, &good).await;
    a_held_boot_partition_lock_answers_busy(&c, &b, &good).await;
    a_good_bundle_is_written_to_slot_b_and_put_on_trial(&c, &b, &good).await;
    an_older_bundle_with_force_replaces_the_trial(&c, &b, &k).await;
}

/// Refusals, each with its status and reason (no credentials, the unauthenticated entry point,
/// another key, another board, an older version, a truncated bundle, not a bundle, over
/// max_bundle, a tampered payload): slot b stays empty and the A/B state unchanged.
async fn refusals_write_nothing_and_switch_nothing(
    c: &Client,
    b: &Gateway,
    k: &Ed25519KeyPair,
    good: &[u8],
) {
    let refused = [
        (
            upload(c, b, "web", good.to_vec(), false, "").await,
            401,
            "Unauthorized",
        ),
        (
            upload(c, b, "traefik", good.to_vec(), true, "").await,
            403,
            "[admin] users",
        ),
        (
            upload(c, b, "web", bundle("test", "2", &key()), true, "").await,
            403,
            "signature",
        ),
        (
            upload(c, b, "web", bundle("rpi3", "2", k), true, "").await,
            422,
            "board rpi3",
        ),
        (
            upload(c, b, "web", bundle("test", "0.9", k), true, "").await,
            422,
            "older",
        ),
        (
            upload(c, b, "web", good[..good.len() / 2].to_vec(), true, "").await,
            400,
            "ends early",
        ),
        (
            upload(c, b, "web", b"GIF89a not a bundle".to_vec(), true, "").await,
            400,
            "BOMABDL1",
        ),
        (
            upload(c, b, "web", too_big(k), true, "").await,
            413,
            "max_bundle",
        ),
    ];
    for (i, (r, status, says)) in refused.iter().enumerate() {
        assert_eq!(r.status, *status, "refusal {i}: {}", r.body);
        assert!(r.body.contains(says), "refusal {i}: {}", r.body);
    }
    let mut tampered = good.to_vec();
    let at = tampered.len() - 100;
    tampered[at] ^= 0x55;
    let r = upload(c, b, "web", tampered, true, "").await;
    assert_eq!(r.status, 400, "tampered payload: {}", r.body);
    // The flipped byte breaks the deflate stream here; one that inflated still would fail the
    // signed digest.
    assert!(
        r.body.contains("payload: corrupt deflate stream")
            || r.body.contains("does not match the signed digest"),
        "tampered payload: {}",
        r.body
    );
    let slot_b = boot_of(b).join("b");
    let leftovers: Vec<_> = std::fs::read_dir(&slot_b)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "slot b after refusals: {leftovers:?}");
    assert_eq!(state(b), boma::update::AbState::default());
}

/// Another process writing the boot partition (`boma update FILE`) holds its lock: 409, busy.
async fn a_held_boot_partition_lock_answers_busy(c: &Client, b: &Gateway, good: &[u8]) {
    let held = std::fs::File::open(boot_of(b)).unwrap();
    held.lock().unwrap();
    let r = upload(c, b, "web", good.to_vec(), true, "").await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.body.contains("another update"), "{}", r.body);
}

/// A good bundle: slot b gets its files, the state puts b on trial (slot a committed, two
/// tries), and the API says slot a runs with a trial pending.
async fn a_good_bundle_is_written_to_slot_b_and_put_on_trial(c: &Client, b: &Gateway, good: &[u8]) {
    let slot_b = boot_of(b).join("b");
    let r = upload(c, b, "web", good.to_vec(), true, "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body.contains(r#""slot":"b""#) && r.body.contains(r#""version":"2""#),
        "{}",
        r.body
    );
    for (name, bytes) in files("2") {
        assert_eq!(std::fs::read(slot_b.join(&name)).unwrap(), bytes, "{name}");
    }
    let s = state(b);
    assert_eq!(s.committed, boma::update::Slot::A);
    let t = s.trial.expect("b on trial");
    assert_eq!(
        (t.slot, t.version.as_str(), t.tries),
        (boma::update::Slot::B, "2", 2)
    );
    let v = api_version(c, b).await;
    assert!(
        v.body.contains(r#""slot":"a""#) && v.body.contains(r#""state":"trial""#),
        "{}",
        v.body
    );
    assert!(v.body.contains(r#""startDate":"20"#), "{}", v.body);
}

/// An older bundle with `?force=1` is taken and replaces the pending trial.
async fn an_older_bundle_with_force_replaces_the_trial(
    c: &Client,
    b: &Gateway,
    k: &Ed25519KeyPair,
) {
    let r = upload(c, b, "web", bundle("test", "0.9", k), true, "?force=1").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(state(b).trial.map(|t| t.version), Some("0.9".to_string()));
}

/// Slot b on trial, slot a committed: what the boot script leaves for a trial boot of b.
fn b_on_trial(boot: &Path) {
    let s = boma::update::AbState {
        committed: boma::update::Slot::A,
        trial: Some(boma::update::state::Trial {
            slot: boma::update::Slot::B,
            version: "1".into(),
            tries: 1,
        }),
        failed: None,
    };
    boma::update::StateFiles::new(boot).write(&s).unwrap();
}

#[tokio::test]
async fn no_update_lands_on_a_slot_still_on_trial() {
    let k = key();
    let b = gateway_committing_after(&k, "b", "5m", b_on_trial);
    let c = Client::new();
    b.boma.routed(&c, "gw.test", "/api/version").await;
    let v = api_version(&c, &b).await;
    assert!(
        v.body.contains(r#""slot":"b""#) && v.body.contains(r#""state":"trial""#),
        "{}",
        v.body
    );
    // Writing slot a now would overwrite the only committed system.
    let r = upload(&c, &b, "web", bundle("test", "2", &k), true, "").await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.body.contains("not committed yet"), "{}", r.body);
    assert!(!boot_of(&b).join("a").exists(), "slot a was touched");
}

#[tokio::test]
async fn a_slot_on_trial_commits_itself_once_it_serves() {
    let k = key();
    let b = gateway(&k, "b", b_on_trial);
    let committed = eventually(Duration::from_secs(20), || async {
        let s = state(&b);
        (s.committed == boma::update::Slot::B && s.trial.is_none()).then_some(())
    })
    .await;
    assert!(
        committed.is_some(),
        "never committed; log:\n{}",
        b.boma.stderr()
    );
    let marker = b.setup.path().join("committed");
    assert_eq!(std::fs::read_to_string(marker).unwrap(), "1");
    // Committed, the running slot b takes the next update into slot a.
    let c = Client::new();
    b.boma.routed(&c, "gw.test", "/api/version").await;
    let r = upload(&c, &b, "web", bundle("test", "2", &k), true, "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains(r#""slot":"a""#), "{}", r.body);
}
