//! Checking and installing an update bundle, read once as a stream (the upload's body or a
//! file), into the slot that is not running. The format is boma-image's (image/src/bundle.rs):
//! `BOMABDL1`, a big-endian u32 length, a TOML manifest (board, version, files with size and
//! sha256), an ed25519 signature over all of that, then one gzip member with the files.
//!
//! Order of trust: the signature is checked before anything is written; board and version
//! before the slot is touched; every file is written beside its old self (`name.new`) and its
//! digest checked before any is renamed into place; the A/B state switches last. A bundle cut
//! off at any byte, or a power cut at any moment, leaves the running slot and the committed
//! state as they were. Memory: the manifest (≤ 64 KiB), inflate's window and one buffer.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use ring::digest::{Context, SHA256};
use serde::Deserialize;

use super::state::{AbState, Slot, StateFiles, Trial};

/// The first bytes of every bundle.
pub const MAGIC: &[u8; 8] = b"BOMABDL1";
/// The longest manifest accepted.
pub const MAX_MANIFEST: usize = 64 * 1024;
/// The files a slot holds; a bundle names the first two and may name the third.
pub const SLOT_FILES: [&str; 3] = ["vmlinuz", "initrd.img", "boma-wifi.cpio.gz"];
/// The largest file accepted.
const MAX_FILE: u64 = 192 * 1024 * 1024;

/// Why a bundle was refused or could not be installed. Nothing of the running system changed.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    #[error("not a boma bundle: {0}")]
    Format(String),
    #[error("the bundle ends early (at byte {0}): nothing was switched")]
    Truncated(u64),
    #[error("the bundle is larger than [update] max_bundle ({0} bytes)")]
    TooBig(u64),
    #[error("bad signature: the bundle is not signed with this gateway's update key")]
    Signature,
    #[error("the bundle is for board {bundle}, this gateway is {system}")]
    WrongBoard { bundle: String, system: String },
    #[error(
        "the bundle's version {bundle} is older than the running {running} (force to install it)"
    )]
    Older { bundle: String, running: String },
    #[error("{0}: its content does not match the signed digest")]
    Digest(String),
    #[error("{0}")]
    State(String),
    #[error("the A/B state cannot be written: {0}")]
    StateWrite(String),
    #[error("updates are not available here: {0}")]
    Unavailable(String),
    #[error("another update is being installed")]
    Busy,
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl UpdateError {
    /// The HTTP status the API answers with.
    pub fn status(&self) -> u16 {
        match self {
            UpdateError::Format(_) | UpdateError::Truncated(_) | UpdateError::Digest(_) => 400,
            UpdateError::Signature => 403,
            UpdateError::TooBig(_) => 413,
            UpdateError::WrongBoard { .. } | UpdateError::Older { .. } => 422,
            UpdateError::Busy | UpdateError::State(_) => 409,
            UpdateError::Unavailable(_) => 503,
            UpdateError::Io { .. } | UpdateError::StateWrite(_) => 500,
        }
    }
}

fn io(path: &Path, source: std::io::Error) -> UpdateError {
    UpdateError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The signed description of a bundle.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub board: String,
    pub version: String,
    pub created: u64,
    pub files: Vec<FileEntry>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    pub name: String,
    pub size: u64,
    pub sha256: String,
}

/// Counts what was read and refuses more than `limit` bytes.
struct Counted<R> {
    inner: R,
    read: u64,
    limit: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read > self.limit {
            return Err(std::io::Error::other("over the limit"));
        }
        Ok(n)
    }
}

impl<R: Read> Counted<R> {
    /// Fill `buf` or say where the bundle ended.
    fn exact(&mut self, buf: &mut [u8]) -> Result<(), UpdateError> {
        let limit = self.limit;
        self.read_exact(buf).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => UpdateError::Truncated(self.read),
            _ if self.read > limit => UpdateError::TooBig(limit),
            _ => io(Path::new("bundle"), e),
        })
    }
}

/// Version order: parts split at `.`, `-`, `+`, `~`, each compared naturally (runs of digits as
/// numbers: `v10` after `v2`, `1.10` after `1.9`); a missing part counts as 0, except that a
/// part with letters where the other version has ended marks a pre-release (`1.0-rc1` before
/// `1.0`).
pub fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let split =
        |s: &str| -> Vec<String> { s.split(['.', '-', '+', '~']).map(str::to_string).collect() };
    let (pa, pb) = (split(a), split(b));
    let textual = |p: &str| p.chars().any(|c| !c.is_ascii_digit());
    for i in 0..pa.len().max(pb.len()) {
        let ord = match (pa.get(i), pb.get(i)) {
            (Some(x), Some(y)) => natural(x, y),
            (Some(x), None) if textual(x) => Ordering::Less,
            (None, Some(y)) if textual(y) => Ordering::Greater,
            (Some(x), None) => natural(x, "0"),
            (None, Some(y)) => natural("0", y),
            (None, None) => Ordering::Equal,
        };
        if ord.is_ne() {
            return ord;
        }
    }
    Ordering::Equal
}

/// Runs of digits compared as numbers, the rest as text.
fn natural(x: &str, y: &str) -> std::cmp::Ordering {
    let runs = |s: &str| -> Vec<(bool, String)> {
        let mut out: Vec<(bool, String)> = Vec::new();
        for c in s.chars() {
            let digit = c.is_ascii_digit();
            match out.last_mut() {
                Some((d, run)) if *d == digit => run.push(c),
                _ => out.push((digit, c.to_string())),
            }
        }
        out
    };
    let (rx, ry) = (runs(x), runs(y));
    for (a, b) in rx.iter().zip(&ry) {
        let ord = match (a, b) {
            ((true, m), (true, n)) => {
                let (m, n) = (m.trim_start_matches('0'), n.trim_start_matches('0'));
                m.len().cmp(&n.len()).then_with(|| m.cmp(n))
            }
            ((_, m), (_, n)) => m.cmp(n),
        };
        if ord.is_ne() {
            return ord;
        }
    }
    rx.len().cmp(&ry.len())
}

/// Read the header and check its signature against `public_key`, then the manifest's shape.
fn read_header<R: Read>(r: &mut Counted<R>, public_key: &[u8]) -> Result<Manifest, UpdateError> {
    let mut head = [0u8; 12];
    r.exact(&mut head)?;
    if &head[..8] != MAGIC {
        return Err(UpdateError::Format(
            "it does not start with BOMABDL1".into(),
        ));
    }
    let len = u32::from_be_bytes([head[8], head[9], head[10], head[11]]) as usize;
    if len == 0 || len > MAX_MANIFEST {
        return Err(UpdateError::Format(format!("manifest length {len}")));
    }
    let mut signed = head.to_vec();
    signed.resize(12 + len, 0);
    r.exact(&mut signed[12..])?;
    let mut signature = [0u8; 64];
    r.exact(&mut signature)?;
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, public_key)
        .verify(&signed, &signature)
        .map_err(|_| UpdateError::Signature)?;
    let text = std::str::from_utf8(&signed[12..])
        .map_err(|_| UpdateError::Format("the manifest is not UTF-8".into()))?;
    let m: Manifest =
        toml::from_str(text).map_err(|e| UpdateError::Format(format!("manifest: {e}")))?;
    check_files(&m)?;
    Ok(m)
}

fn check_files(m: &Manifest) -> Result<(), UpdateError> {
    let bad = |why: String| Err(UpdateError::Format(why));
    for need in &SLOT_FILES[..2] {
        if !m.files.iter().any(|f| f.name == *need) {
            return bad(format!("the manifest has no {need}"));
        }
    }
    for (i, f) in m.files.iter().enumerate() {
        if !SLOT_FILES.contains(&f.name.as_str()) {
            return bad(format!("{:?} is not a slot file", f.name));
        }
        if m.files[..i].iter().any(|g| g.name == f.name) {
            return bad(format!("{} is listed twice", f.name));
        }
        if f.size > MAX_FILE {
            return bad(format!("{} is {} bytes", f.name, f.size));
        }
        if f.sha256.len() != 64 || !f.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return bad(format!("{}: the sha256 is not 64 hex digits", f.name));
        }
    }
    Ok(())
}

/// What the bundle must fit.
#[derive(Debug, Clone)]
pub struct Target {
    /// The boot partition (writable while this runs).
    pub boot: PathBuf,
    /// The slot running now; the other one is written.
    pub running: Slot,
    pub board: String,
    pub version: String,
    pub public_key: Vec<u8>,
    pub force: bool,
    pub max_bundle: u64,
    pub trial_boots: u8,
}

/// What was installed: the slot that boots next, on trial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    pub slot: Slot,
    pub version: String,
    pub bytes: u64,
}

/// Check `bundle` and write it into the slot that is not running, then put that slot on trial.
pub fn install(bundle: impl Read, t: &Target) -> Result<Installed, UpdateError> {
    let mut r = Counted {
        inner: bundle,
        read: 0,
        limit: t.max_bundle,
    };
    let m = read_header(&mut r, &t.public_key)?;
    if m.board != t.board {
        return Err(UpdateError::WrongBoard {
            bundle: m.board,
            system: t.board.clone(),
        });
    }
    if !t.force && compare_versions(&m.version, &t.version).is_lt() {
        return Err(UpdateError::Older {
            bundle: m.version,
            running: t.version.clone(),
        });
    }
    let target = t.running.other();
    let states = StateFiles::new(&t.boot);
    let mut state = prepare_state(&states, t.running, target)?;
    let dir = t.boot.join(target.name());
    std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
    let written = write_files(&mut r, &m, &dir);
    if let Err(e) = written {
        for f in &m.files {
            let _ = std::fs::remove_file(dir.join(format!("{}.new", f.name)));
        }
        return Err(e);
    }
    place_files(&m, &dir)?;
    state.trial = Some(Trial {
        slot: target,
        version: m.version.clone(),
        tries: t.trial_boots,
    });
    state.failed = None;
    states.write(&state).map_err(|e| {
        UpdateError::StateWrite(format!("switching to slot {}: {e}", target.name()))
    })?;
    Ok(Installed {
        slot: target,
        version: m.version,
        bytes: r.read,
    })
}

/// The state before `target` is overwritten: the running slot must be the committed one, and
/// `target` no longer on trial (so a power cut while it is half-written never boots it).
fn prepare_state(states: &StateFiles, running: Slot, target: Slot) -> Result<AbState, UpdateError> {
    let mut state = match states.read() {
        Ok((s, _)) => s,
        // Both copies unreadable: the boot script then boots slot a, committed.
        Err(_) => AbState::default(),
    };
    if state.committed != running {
        return Err(UpdateError::State(format!(
            "the running slot {} is not committed yet (slot {} is): wait for the commit, or reboot",
            running.name(),
            state.committed.name()
        )));
    }
    if state.trial.as_ref().is_some_and(|tr| tr.slot == target) {
        state.trial = None;
        states
            .write(&state)
            .map_err(|e| UpdateError::StateWrite(format!("clearing the pending trial: {e}")))?;
    }
    Ok(state)
}

/// Inflate the payload into `dir/<name>.new`, checking each file's size and digest.
fn write_files<R: Read>(r: &mut Counted<R>, m: &Manifest, dir: &Path) -> Result<(), UpdateError> {
    let mut gz = flate2::read::GzDecoder::new(r);
    let mut buf = vec![0u8; 64 * 1024];
    for f in &m.files {
        let path = dir.join(format!("{}.new", f.name));
        let mut out = std::fs::File::create(&path).map_err(|e| io(&path, e))?;
        let mut digest = Context::new(&SHA256);
        let mut left = f.size;
        while left > 0 {
            let want = buf.len().min(usize::try_from(left).unwrap_or(buf.len()));
            let n = match gz.read(&mut buf[..want]) {
                Ok(0) => return Err(UpdateError::Truncated(gz.get_ref().read)),
                Ok(n) => n,
                Err(e) => return Err(payload_error(gz.get_ref(), e)),
            };
            digest.update(&buf[..n]);
            out.write_all(&buf[..n]).map_err(|e| io(&path, e))?;
            left -= n as u64;
        }
        let got: String = (digest.finish().as_ref().iter())
            .map(|b| format!("{b:02x}"))
            .collect();
        if !got.eq_ignore_ascii_case(&f.sha256) {
            return Err(UpdateError::Digest(f.name.clone()));
        }
        out.sync_all().map_err(|e| io(&path, e))?;
    }
    match gz.read(&mut buf[..1]) {
        Ok(0) => Ok(()),
        Ok(_) => Err(UpdateError::Format(
            "the payload holds more than its files".into(),
        )),
        Err(e) => Err(payload_error(gz.get_ref(), e)),
    }
}

fn payload_error<R>(r: &Counted<R>, e: std::io::Error) -> UpdateError {
    if r.read > r.limit {
        UpdateError::TooBig(r.limit)
    } else if e.kind() == std::io::ErrorKind::UnexpectedEof {
        UpdateError::Truncated(r.read)
    } else {
        UpdateError::Format(format!("payload: {e}"))
    }
}

/// Rename every `name.new` over `name`, drop slot files the bundle does not have, and flush
/// the folder.
fn place_files(m: &Manifest, dir: &Path) -> Result<(), UpdateError> {
    for f in &m.files {
        let (from, to) = (dir.join(format!("{}.new", f.name)), dir.join(&f.name));
        std::fs::rename(&from, &to).map_err(|e| io(&to, e))?;
    }
    for name in SLOT_FILES {
        if !m.files.iter().any(|f| f.name == name) {
            let _ = std::fs::remove_file(dir.join(name));
        }
    }
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering::*;

    #[test]
    fn versions_compare_by_parts() {
        assert_eq!(compare_versions("1.10", "1.9"), Greater);
        assert_eq!(compare_versions("2", "1.99.3"), Greater);
        assert_eq!(compare_versions("0.1.0", "0.1"), Equal);
        assert_eq!(compare_versions("1.0-rc1", "1.0-rc2"), Less);
        assert_eq!(compare_versions("1", "2"), Less);
        assert_eq!(compare_versions("1.0", "1.0-rc1"), Greater);
        assert_eq!(compare_versions("1.0-rc1", "1.0"), Less);
        assert_eq!(compare_versions("v10", "v2"), Greater);
        assert_eq!(compare_versions("2026.11.28", "2026.11.3"), Greater);
        assert_eq!(compare_versions("1.2", "1.2.0"), Equal);
    }
}
