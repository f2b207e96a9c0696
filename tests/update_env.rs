//! boma's U-Boot environment blocks (src/update/env.rs) against the real tools: U-Boot's own
//! `mkenvimage` (u-boot-tools) writes a block boma reads, and libubootenv's `fw_printenv` and
//! `fw_setenv` (the tools an operator has on a Linux box) read and change the blocks boma
//! writes. Both are installed by `make test`'s deps; a missing one fails the test.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use boma::update::env::{self, STATE_SIZE};

fn dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("boma-update-env-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("{cmd:?}: {e} (make test installs u-boot-tools and libubootenv-tool)")
    });
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A libubootenv config for one file holding one environment of STATE_SIZE bytes.
fn fw_config(dir: &Path, file: &Path) -> PathBuf {
    let cfg = dir.join("fw_env.config");
    std::fs::write(&cfg, format!("{} 0x0 {:#x}\n", file.display(), STATE_SIZE)).expect("cfg");
    cfg
}

#[test]
fn u_boot_tools_and_boma_read_each_others_blocks() {
    let d = dir();
    // mkenvimage (zero padding, as U-Boot's `env export` pads) → boma.
    let text = d.join("in.txt");
    std::fs::write(
        &text,
        "boma_slot=B\nboma_try=A\nboma_tries=3\nbootargs=console=ttyS1,115200 quiet\n",
    )
    .expect("text");
    let made = d.join("made.env");
    run(Command::new("mkenvimage")
        .args(["-s", &format!("{STATE_SIZE:#x}"), "-p", "0", "-o"])
        .arg(&made)
        .arg(&text));
    let vars =
        env::decode(&std::fs::read(&made).expect("read")).expect("boma reads mkenvimage's block");
    assert_eq!(vars["boma_slot"], "B");
    assert_eq!(vars["boma_tries"], "3");
    assert_eq!(vars["bootargs"], "console=ttyS1,115200 quiet");
    // boma → fw_printenv; fw_setenv changes it → boma reads the change.
    let (primary, backup) = (d.join("abstate.env"), d.join("abstate.bak"));
    let mut mine = BTreeMap::new();
    mine.insert("boma_slot".to_string(), "A".to_string());
    mine.insert("boma_try".to_string(), "B".to_string());
    env::write_pair(&primary, &backup, &mine, STATE_SIZE).expect("write");
    let cfg = fw_config(&d, &primary);
    let printed = run(Command::new("fw_printenv").arg("-c").arg(&cfg));
    assert!(
        printed.contains("boma_slot=A\n") && printed.contains("boma_try=B\n"),
        "{printed}"
    );
    run(Command::new("fw_setenv")
        .arg("-c")
        .arg(&cfg)
        .args(["boma_tries", "2"]));
    let (vars, which) = env::read_pair(&primary, &backup, STATE_SIZE).expect("read back");
    assert_eq!(which, env::Which::Primary);
    assert_eq!(vars.get("boma_tries").map(String::as_str), Some("2"));
    assert_eq!(vars["boma_slot"], "A");
    // A primary whose CRC does not match is refused, and the backup read instead.
    let mut bad = std::fs::read(&primary).expect("read");
    bad[20] ^= 0x20;
    std::fs::write(&primary, &bad).expect("write");
    assert!(env::decode(&bad).is_err());
    let (vars, which) = env::read_pair(&primary, &backup, STATE_SIZE).expect("backup");
    assert_eq!((which, vars), (env::Which::Backup, mine));
    let _ = std::fs::remove_dir_all(&d);
}
