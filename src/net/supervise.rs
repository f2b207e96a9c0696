//! Running a helper daemon of the image (busybox `udhcpc`, `hostapd`, `wpa_supplicant`) for as
//! long as boma runs: started once its program and interface are there (the Wi-Fi programs are
//! unpacked in the background on the image, a USB adapter or a radio's firmware can take
//! seconds), restarted with a growing pause when it exits, killed on shutdown. Its output goes
//! where boma's own goes (the serial console on the image), not through a pipe: glibc buffers a
//! pipe in 4 KiB blocks, so hostapd's `AP-STA-CONNECTED` would show up minutes late.
//!
//! What the daemon is told lives in its arguments and files, written by the caller; this module
//! never reads or logs them.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

/// Longest pause between two starts.
const MAX_PAUSE: Duration = Duration::from_secs(30);
/// How often a daemon that cannot start yet looks again for its program and interface.
const WAIT_STEP: Duration = Duration::from_secs(1);

/// One supervised daemon (no `Debug`: its file may hold a key).
#[derive(Clone)]
pub struct Daemon {
    /// Its name in boma's log (`WAN DHCP client`, `hostapd`).
    pub name: &'static str,
    /// The program: a path, or a name looked up on `PATH`.
    pub program: String,
    pub args: Vec<OsString>,
    /// The interface it runs on; it starts once `/sys/class/net/<interface>` exists.
    pub interface: String,
    /// Let its standard output go where boma's goes (otherwise discarded).
    pub show_output: bool,
    /// The daemon's configuration file, written (mode 0600, in a folder of mode 0700) before
    /// every start once the program and interface are there; when that fails the error (never
    /// the contents) is logged and the start retried.
    pub file: Option<(PathBuf, String)>,
}

/// Write `contents` to `path` readable by its owner only, creating the folder (mode 0700).
pub fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // A file left by someone else with wider rights is narrowed before the key goes in.
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(contents.as_bytes())
}

/// Where `program` is: itself when it holds a `/`, else the first executable of that name on
/// `PATH`.
pub fn find_program(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        let p = PathBuf::from(program);
        return executable(&p).then_some(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| executable(p))
}

/// Run `d` in `tasks` until `stop`.
pub fn spawn(d: Daemon, tasks: &mut JoinSet<()>, stop: watch::Receiver<bool>) {
    tasks.spawn(async move {
        let mut stop = stop;
        let mut pause = Duration::from_secs(1);
        loop {
            let Some(program) = wait_ready(&d, &mut stop).await else {
                return;
            };
            let mut cmd = tokio::process::Command::new(&program);
            cmd.args(&d.args)
                .kill_on_drop(true)
                .stdin(Stdio::null())
                .stdout(if d.show_output {
                    Stdio::inherit()
                } else {
                    Stdio::null()
                });
            let mut child = match cmd.spawn() {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(daemon = d.name, program = %program.display(), error = %e, "net: cannot start");
                    if sleep_or_stop(&mut stop, pause).await {
                        return;
                    }
                    pause = (pause * 2).min(MAX_PAUSE);
                    continue;
                }
            };
            tracing::info!(daemon = d.name, interface = %d.interface, "net: started");
            let started = tokio::time::Instant::now();
            tokio::select! {
                status = child.wait() => {
                    tracing::warn!(daemon = d.name, status = ?status, "net: exited; restarting");
                }
                _ = stop.changed() => {
                    terminate(&mut child).await;
                    return;
                }
            }
            // One that ran a good while before it stopped starts over with a short pause.
            if started.elapsed() > Duration::from_secs(60) {
                pause = Duration::from_secs(1);
            }
            if sleep_or_stop(&mut stop, pause).await {
                return;
            }
            pause = (pause * 2).min(MAX_PAUSE);
        }
    });
}

/// How long a daemon has to exit after SIGTERM before it is killed.
const TERM_GRACE: Duration = Duration::from_secs(3);

/// SIGTERM first, so that hostapd takes the radio out of the bridge and out of AP mode (a
/// killed hostapd leaves a bridged AP behind, which wpa_supplicant then cannot use) and udhcpc
/// can release; SIGKILL after [`TERM_GRACE`].
async fn terminate(child: &mut tokio::process::Child) {
    use rustix::process::{Pid, Signal, kill_process};
    let pid = (child.id())
        .and_then(|id| i32::try_from(id).ok())
        .and_then(Pid::from_raw);
    if let Some(pid) = pid
        && kill_process(pid, Signal::TERM).is_ok()
        && tokio::time::timeout(TERM_GRACE, child.wait()).await.is_ok()
    {
        return;
    }
    let _ = child.kill().await;
}

/// True when `stop` came first.
async fn sleep_or_stop(stop: &mut watch::Receiver<bool>, pause: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(pause) => false,
        _ = stop.changed() => true,
    }
}

/// The program's path once it and the interface exist and `prepare` worked; None on `stop`.
/// What it is waiting for is logged once per change.
async fn wait_ready(d: &Daemon, stop: &mut watch::Receiver<bool>) -> Option<PathBuf> {
    let mut last = String::new();
    loop {
        let missing = match find_program(&d.program) {
            None => format!("waiting for the program {}", d.program),
            Some(program) => {
                let sys = Path::new("/sys/class/net").join(&d.interface);
                if !sys.exists() {
                    format!("waiting for interface {}", d.interface)
                } else {
                    let written = (d.file.as_ref())
                        .map(|(path, text)| write_private(path, text).map_err(|e| (path, e)));
                    match written {
                        None | Some(Ok(())) => return Some(program),
                        Some(Err((path, e))) => format!("cannot write {}: {e}", path.display()),
                    }
                }
            }
        };
        if missing != last {
            tracing::info!(daemon = d.name, "net: {missing}");
            last = missing;
        }
        if sleep_or_stop(stop, WAIT_STEP).await {
            return None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_found_by_path_or_name() {
        assert_eq!(find_program("/bin/sh"), Some(PathBuf::from("/bin/sh")));
        assert!(find_program("sh").is_some_and(|p| p.ends_with("sh")));
        assert_eq!(find_program("/nonexistent/hostapd"), None);
        assert_eq!(find_program("boma-no-such-program"), None);
        // A directory or a file without an execute bit is not a program.
        assert_eq!(find_program("/tmp"), None);
        let plain = std::env::temp_dir().join(format!("boma-plain-{}", std::process::id()));
        std::fs::write(&plain, "not a program").expect("write");
        assert_eq!(find_program(&plain.to_string_lossy()), None);
        let _ = std::fs::remove_file(&plain);
    }

    #[tokio::test]
    async fn a_daemon_waits_for_its_interface_runs_and_stops() {
        let (stop_tx, stop) = watch::channel(false);
        let dir = std::env::temp_dir().join(format!("boma-supervise-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let marker = dir.join("ran");
        let mut tasks = JoinSet::new();
        // `lo` exists everywhere: the daemon starts, writes its marker, and sleeps until stopped.
        let d = Daemon {
            name: "test",
            program: "sh".into(),
            args: vec![
                "-c".into(),
                format!("echo started > {}; exec sleep 30", marker.display()).into(),
            ],
            interface: "lo".into(),
            show_output: true,
            file: Some((dir.join("conf"), "prepared".into())),
        };
        spawn(d, &mut tasks, stop.clone());
        let mut waited = 0;
        while !marker.exists() && waited < 100 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            waited += 1;
        }
        assert_eq!(
            std::fs::read_to_string(dir.join("conf")).ok().as_deref(),
            Some("prepared")
        );
        assert!(marker.exists(), "the daemon never ran");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("conf"))
            .expect("conf")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // An interface that never appears: the daemon is never started.
        let never = dir.join("never");
        let d = Daemon {
            name: "test-missing",
            program: "sh".into(),
            args: vec!["-c".into(), format!("touch {}", never.display()).into()],
            interface: "boma-nonexist".into(),
            show_output: false,
            file: None,
        };
        spawn(d, &mut tasks, stop);
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop_tx.send(true).expect("stop");
        while tasks.join_next().await.is_some() {}
        assert!(!never.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
