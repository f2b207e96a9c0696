//! The command line as an operator uses it: `boma check` on good and bad files, `boma version`,
//! and the embedded default configuration.

use std::process::Command;

fn boma() -> Command {
    Command::new(env!("CARGO_BIN_EXE_boma"))
}

#[test]
fn check_reports_every_problem_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("boma.toml");
    std::fs::write(
        &path,
        "[entryPoints.web]\naddress = \"127.0.0.1:8080\"\nadress = \"x\"\n\n[entrypoints.web.transport.respondingTimeouts]\nreadTimeout = \"soon\"\n\n[limits]\nmax_conections = 3\n",
    )
    .unwrap();
    let out = boma().arg("check").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    let shown = path.display().to_string();
    // Both unknown keys, each at its own line and column.
    assert!(err.contains(&format!("{shown}:3:1:")), "{err}");
    assert!(err.contains("adress"), "{err}");
    assert!(err.contains(&format!("{shown}:9:1:")), "{err}");
    assert!(err.contains("max_conections"), "{err}");
}

#[test]
fn check_warns_of_an_open_api_and_refuses_unreadable_admin_users() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("boma.toml");
    let shown = path.display().to_string();
    // insecure on loopback: no warning.
    let open = |address: &str| {
        format!("[entryPoints.traefik]\naddress = \"{address}\"\n[api]\ninsecure = true\n")
    };
    std::fs::write(&path, open("127.0.0.1:8081")).unwrap();
    let out = boma().arg("check").arg(&path).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("warning"));
    // insecure on every address: valid, with a warning.
    std::fs::write(&path, open("0.0.0.0:8081")).unwrap();
    let out = boma().arg("check").arg(&path).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{shown}: warning: [api] insecure = true"))
            && err.contains("0.0.0.0:8081"),
        "{err}"
    );
    // An [admin] entry that is not name:hash, or whose hash boma cannot check: an error at its
    // place, and the hash is not repeated.
    std::fs::write(
        &path,
        "[admin]\nusers = [\n  \"admin:{SHA}O9w+xoK/u0cUIpJfmnH8Z+bAyjw=\",\n  \"nohash\",\n  \"bob:plaintext-secret\",\n]\n",
    )
    .unwrap();
    let out = boma().arg("check").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{shown}:4:3:")) && err.contains("name:hash"),
        "{err}"
    );
    assert!(
        err.contains(&format!("{shown}:5:3:")) && err.contains("\"bob\""),
        "{err}"
    );
    assert!(!err.contains("plaintext-secret"), "{err}");
}

#[test]
fn check_accepts_the_documented_example() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/boma.example.toml");
    let out = boma().arg("check").arg(example).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).ends_with(": ok\n"));
}

#[test]
fn version_and_usage() {
    let out = boma().arg("version").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("boma {}", env!("CARGO_PKG_VERSION"))
    );
    let out = boma().arg("--bogus").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage:"));
}

#[test]
fn a_missing_config_file_is_a_clear_error() {
    let out = boma()
        .args(["run", "--config", "/nonexistent/boma.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/boma.toml"), "{err}");
}

#[test]
fn logs_into_a_pipe_carry_no_colour_codes() {
    use std::io::{BufRead, BufReader, Read};
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("boma.toml");
    std::fs::write(
        &cfg,
        "[dns]\nlisten = [\"127.0.0.1:0\"]\naddress = \"127.0.0.1\"\nupstreams = []\n",
    )
    .expect("write config");
    let mut child = boma()
        .args(["run", "--config"])
        .arg(&cfg)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn boma");
    let stdout = child.stdout.take().expect("stdout");
    let ready = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|l| l.trim() == "ready");
    let _ = child.kill();
    let _ = child.wait();
    let mut err = String::new();
    let _ = child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err);
    assert!(ready, "boma did not start: {err}");
    assert!(err.contains("dns: starting"), "no log line: {err}");
    assert!(
        !err.contains('\u{1b}'),
        "ANSI codes in a piped log: {err:?}"
    );
}
