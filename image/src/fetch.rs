//! Fetching pinned packages with `apt-get download` into a cache folder (one sub-folder per
//! package and version, so the file name apt picks does not matter) and checking their sha256
//! against the lock. Downloads happen once, into a private folder and then renamed into place;
//! later builds only hash the cached file.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::board::Pin;
use crate::error::{Error, Result};
use crate::lock::Lock;

/// Lower-case hex sha256 of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn cache_dir(cache: &Path, pin: &Pin) -> PathBuf {
    let safe = |s: &str| {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || ".-+".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect::<String>()
    };
    cache.join(format!(
        "{}_{}_{}",
        safe(&pin.package),
        safe(&pin.version),
        safe(&pin.arch)
    ))
}

/// The cached `.deb` of a pin, downloaded if missing; verified against (or, with `record`,
/// recorded into) the lock. A cached file that does not match (an interrupted download of an
/// older boma-image) is replaced by one fresh download before the mismatch is an error.
pub fn fetch(pin: &Pin, cache: &Path, lock: &mut Lock, record: bool) -> Result<PathBuf> {
    let dir = cache_dir(cache, pin);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    if lock.get(pin).is_none() && !record {
        return Err(Error::NotLocked {
            package: pin.package.clone(),
            version: pin.version.clone(),
            lock: lock.path.clone(),
        });
    }
    if let Some(deb) = find_deb(&dir)? {
        match verify(pin, &deb, lock, record) {
            Err(Error::Checksum { .. }) => {
                eprintln!(
                    "boma-image: {} does not match the lock; fetching it again",
                    deb.display()
                );
                std::fs::remove_file(&deb).map_err(|e| Error::io(&deb, e))?;
            }
            done => return done.map(|()| deb),
        }
    }
    let deb = download(pin, &dir)?;
    verify(pin, &deb, lock, record).map(|()| deb)
}

/// Check `deb` against the lock, or record it there with `record`.
fn verify(pin: &Pin, deb: &Path, lock: &mut Lock, record: bool) -> Result<()> {
    let bytes = std::fs::read(deb).map_err(|e| Error::io(deb, e))?;
    let actual = sha256_hex(&bytes);
    match lock.get(pin) {
        Some(expected) if expected == actual => Ok(()),
        Some(expected) if !record => Err(Error::Checksum {
            package: pin.package.clone(),
            version: pin.version.clone(),
            expected: expected.to_string(),
            actual,
        }),
        _ => {
            lock.set(pin, &actual);
            Ok(())
        }
    }
}

/// `apt-get download` into a folder of this process's own, then a rename into `dir`: builds
/// running at once (the image tests do) never see each other's half-written file.
fn download(pin: &Pin, dir: &Path) -> Result<PathBuf> {
    static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let scratch = dir.join(format!(".download-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).map_err(|e| Error::io(&scratch, e))?;
    let result = download_into(pin, &scratch).and_then(|got| {
        let name = got.file_name().expect("a .deb has a name").to_owned();
        let dest = dir.join(name);
        std::fs::rename(&got, &dest).map_err(|e| Error::io(&dest, e))?;
        Ok(dest)
    });
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

fn download_into(pin: &Pin, scratch: &Path) -> Result<PathBuf> {
    let spec = if pin.arch == "all" {
        format!("{}={}", pin.package, pin.version)
    } else {
        format!("{}:{}={}", pin.package, pin.arch, pin.version)
    };
    eprintln!("boma-image: apt-get download {spec}");
    let out = Command::new("apt-get")
        .args(["download", "-q", &spec])
        .current_dir(scratch)
        .output()
        .map_err(|e| Error::Command {
            command: "apt-get download".into(),
            message: format!("{e} (is this a Debian host? run scripts/image-deps.sh)"),
        })?;
    if !out.status.success() {
        return Err(Error::Command {
            command: format!("apt-get download {spec}"),
            message: format!(
                "{}{} (run scripts/image-deps.sh; a pinned version can vanish from the mirror \
                 after a point release, then bump the pin in board/*/board.toml)",
                String::from_utf8_lossy(&out.stdout).trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    find_deb(scratch)?.ok_or_else(|| Error::Package {
        package: pin.package.clone(),
        message: "apt-get download produced no .deb".into(),
    })
}

fn find_deb(dir: &Path) -> Result<Option<PathBuf>> {
    let mut debs = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        if path.extension().is_some_and(|x| x == "deb") {
            debs.push(path);
        }
    }
    debs.sort();
    match debs.len() {
        0 => Ok(None),
        1 => Ok(debs.pop()),
        _ => Err(Error::Layout(format!(
            "{}: more than one .deb; remove the folder",
            dir.display()
        ))),
    }
}
