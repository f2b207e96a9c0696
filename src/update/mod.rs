//! Signed A/B updates (docs/updates.md). The boot partition holds two system slots, `a/` and
//! `b/`, and the A/B state that Debian's U-Boot reads through the image's boot script. An update
//! is a bundle signed by the operator's key: [`Updater::install`] checks it and writes it into the
//! slot that is not running ([`bundle`]), then puts that slot on trial ([`state`]) and reboots.
//! The new system commits itself once it has been ready and serving for a while ([`commit`]);
//! if it crashes, hangs or never commits, the boot script goes back to the old slot after its
//! trial boots and the old system reports the failure.
//!
//! Below the wiring: imports only `config`; the proxy hands it upload bodies, the admin API reads
//! its status.

pub mod bundle;
pub mod commit;
pub mod env;
pub mod state;

use std::io::Read;
use std::path::Path;
use std::sync::Mutex;

use serde_json::{Value, json};

use crate::config;
pub use bundle::{Installed, UpdateError};
pub use state::{AbState, Slot, StateFiles};

/// What this system is, from the files the image builder wrote and the kernel's command line.
#[derive(Debug, Clone)]
pub struct System {
    pub board: String,
    pub version: String,
    /// The slot U-Boot booted.
    pub slot: Slot,
    pub public_key: Vec<u8>,
}

/// The update side of a running gateway: its facts, one install at a time.
#[derive(Debug)]
pub struct Updater {
    cfg: config::Update,
    /// The system, or why updates are not available here.
    system: Result<System, String>,
    busy: Mutex<()>,
    /// Set once an installed update is about to reboot: no other install may start then.
    rebooting: std::sync::atomic::AtomicBool,
}

/// `key=value` lines.
fn field(text: &str, key: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .map(|v| v.trim().to_string())
}

fn parse_key(text: &str) -> Option<Vec<u8>> {
    let t = text.trim();
    if t.len() != 64 {
        return None;
    }
    (0..32)
        .map(|i| u8::from_str_radix(t.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

/// `boma.slot=` of a kernel command line.
pub fn slot_of_cmdline(cmdline: &str) -> Option<Slot> {
    cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix("boma.slot="))
        .and_then(Slot::parse)
}

impl System {
    fn find(cfg: &config::Update) -> Result<System, String> {
        let slot = if cfg.slot.is_empty() {
            let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
            slot_of_cmdline(&cmdline)
                .ok_or("not booted from an A/B slot (no boma.slot= on the kernel command line)")?
        } else {
            Slot::parse(&cfg.slot).ok_or("[update] slot is not a or b")?
        };
        let release = std::fs::read_to_string(&cfg.release)
            .map_err(|e| format!("{}: {e}", cfg.release.display()))?;
        let board = field(&release, "board")
            .ok_or_else(|| format!("{}: no board= line", cfg.release.display()))?;
        let version = field(&release, "version")
            .ok_or_else(|| format!("{}: no version= line", cfg.release.display()))?;
        let key = std::fs::read_to_string(&cfg.public_key)
            .map_err(|e| format!("{}: {e}", cfg.public_key.display()))?;
        let public_key = parse_key(&key).ok_or_else(|| {
            format!(
                "{}: not 64 hex digits of an ed25519 key",
                cfg.public_key.display()
            )
        })?;
        Ok(System {
            board,
            version,
            slot,
            public_key,
        })
    }
}

impl Updater {
    /// The updater of `cfg` (defaults when `None`); on a system not booted from a slot it only
    /// says why it cannot update.
    pub fn new(cfg: Option<&config::Update>) -> Updater {
        let cfg = cfg.cloned().unwrap_or_default();
        let system = System::find(&cfg);
        Updater {
            cfg,
            system,
            busy: Mutex::new(()),
            rebooting: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub fn config(&self) -> &config::Update {
        &self.cfg
    }

    /// The system, or why updates are not available.
    pub fn system(&self) -> Result<&System, &str> {
        self.system.as_ref().map_err(String::as_str)
    }

    /// The A/B state on the boot partition.
    pub fn state(&self) -> Result<AbState, String> {
        StateFiles::new(&self.cfg.boot)
            .read()
            .map(|(s, _)| s)
            .map_err(|e| e.to_string())
    }

    /// Check `bundle` and install it into the other slot, on trial; the caller reboots (see
    /// [`Updater::reboot_later`]). One at a time: a second caller gets [`UpdateError::Busy`].
    pub fn install(&self, bundle: impl Read, force: bool) -> Result<Installed, UpdateError> {
        let sys = self
            .system
            .as_ref()
            .map_err(|why| UpdateError::Unavailable(why.clone()))?;
        let _one = self.busy.try_lock().map_err(|_| UpdateError::Busy)?;
        if self.rebooting.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(UpdateError::Busy);
        }
        // Also against another process (`boma update FILE` beside the running gateway).
        let _flock = lock_boot(&self.cfg.boot, false)?;
        let target = bundle::Target {
            boot: self.cfg.boot.clone(),
            running: sys.slot,
            board: sys.board.clone(),
            version: sys.version.clone(),
            public_key: sys.public_key.clone(),
            force,
            max_bundle: self.cfg.max_bundle,
            trial_boots: self.cfg.trial_boots,
        };
        let result = writable(&self.cfg.boot, || bundle::install(bundle, &target));
        if result.is_ok() && self.cfg.reboot {
            self.rebooting
                .store(true, std::sync::atomic::Ordering::SeqCst);
        }
        match &result {
            Ok(i) => tracing::info!(
                slot = i.slot.name(),
                version = %i.version,
                bytes = i.bytes,
                "update: installed, on trial at the next boot"
            ),
            Err(e) => tracing::warn!(error = %e, "update: refused"),
        }
        result
    }

    /// Reboot in `delay` (so the answer to the upload gets out first), when `[update] reboot`.
    pub fn reboot_later(&self, delay: std::time::Duration) {
        if !self.cfg.reboot {
            return;
        }
        std::thread::spawn(move || {
            std::thread::sleep(delay);
            tracing::info!("update: rebooting into the new slot");
            if let Err(e) = std::process::Command::new("reboot").status() {
                tracing::error!(error = %e, "update: cannot run reboot");
            }
        });
    }

    /// Commit the running slot: it boots from now on, the trial is over.
    pub fn commit(&self) -> Result<(), String> {
        let sys = self.system().map_err(str::to_string)?;
        let _one = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        let _flock = lock_boot(&self.cfg.boot, true).map_err(|e| e.to_string())?;
        let files = StateFiles::new(&self.cfg.boot);
        let mut state = files.read().map(|(s, _)| s).unwrap_or_default();
        state.committed = sys.slot;
        state.trial = None;
        state.failed = None;
        writable(&self.cfg.boot, || files.write(&state)).map_err(|e| e.to_string())?;
        if let Err(e) = std::fs::write(&self.cfg.committed_marker, sys.version.as_bytes()) {
            tracing::warn!(path = %self.cfg.committed_marker.display(), error = %e, "update: cannot write the committed marker");
        }
        Ok(())
    }

    /// `/api/version`'s boma part: `slot` and `update` (`version`, `state`).
    pub fn status_json(&self) -> Value {
        let Ok(sys) = self.system() else {
            return json!({"slot": null, "update": null});
        };
        let update = match self.state() {
            Ok(AbState { trial: Some(t), .. }) => {
                json!({"version": t.version, "state": "trial", "slot": t.slot.name()})
            }
            Ok(AbState {
                failed: Some(f), ..
            }) => json!({"version": f, "state": "failed"}),
            Ok(s) if s.committed == sys.slot => {
                json!({"version": sys.version, "state": "committed"})
            }
            Ok(_) => json!({"version": sys.version, "state": "fallback"}),
            Err(e) => json!({"version": sys.version, "state": "unknown", "error": e}),
        };
        json!({"slot": sys.slot.name(), "board": sys.board, "update": update})
    }
}

/// An exclusive `flock` on the boot partition's folder, held while it is written; `wait`:
/// block for it, else [`UpdateError::Busy`] when another process holds it.
fn lock_boot(boot: &Path, wait: bool) -> Result<std::fs::File, UpdateError> {
    let dir = std::fs::File::open(boot).map_err(|e| UpdateError::Io {
        path: boot.display().to_string(),
        source: e,
    })?;
    let locked = if wait {
        dir.lock().map_err(std::fs::TryLockError::Error)
    } else {
        dir.try_lock()
    };
    match locked {
        Ok(()) => Ok(dir),
        Err(std::fs::TryLockError::WouldBlock) => Err(UpdateError::Busy),
        Err(std::fs::TryLockError::Error(e)) => Err(UpdateError::Io {
            path: boot.display().to_string(),
            source: e,
        }),
    }
}

/// Run `f` with `boot` writable: a read-only mount (the image's `/boot`) is remounted
/// read-write for it and read-only again after.
fn writable<T, E: From<UpdateError>>(
    boot: &Path,
    f: impl FnOnce() -> Result<T, E>,
) -> Result<T, E> {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let target = boot.to_string_lossy();
    let read_only = mounts.lines().any(|l| {
        let mut w = l.split_whitespace();
        let (_, at, _, opts) = (w.next(), w.next(), w.next(), w.next());
        at == Some(&*target) && opts.is_some_and(|o| o.split(',').any(|x| x == "ro"))
    });
    let remount = |mode: &str| {
        std::process::Command::new("mount")
            .args(["-o", &format!("remount,{mode}")])
            .arg(boot)
            .status()
            .map_err(|e| e.to_string())
            .and_then(|s| {
                if s.success() {
                    Ok(())
                } else {
                    Err(s.to_string())
                }
            })
    };
    if read_only {
        remount("rw").map_err(|e| {
            UpdateError::Unavailable(format!("cannot remount {target} read-write: {e}"))
        })?;
    }
    let out = f();
    if read_only && let Err(e) = remount("ro") {
        tracing::warn!(error = %e, "update: cannot remount {target} read-only");
    }
    out
}

impl From<UpdateError> for env::EnvError {
    fn from(e: UpdateError) -> Self {
        env::EnvError::Io {
            path: "boot partition".into(),
            source: std::io::Error::other(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slot_comes_from_the_command_line() {
        assert_eq!(
            slot_of_cmdline("console=ttyAMA0 boma.slot=b panic=10"),
            Some(Slot::B)
        );
        assert_eq!(slot_of_cmdline("boma.slot=c"), None);
        assert_eq!(slot_of_cmdline("quiet"), None);
        assert_eq!(
            field("board=rpi3\nversion=2\n", "version").as_deref(),
            Some("2")
        );
        assert_eq!(parse_key(&"ab".repeat(32)).map(|k| k.len()), Some(32));
        assert_eq!(parse_key("abc"), None);
    }
}
