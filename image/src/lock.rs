//! `image/packages.lock`: the sha256 of every pinned package file, checked before a package is
//! used. A package not in the lock is refused unless the build is asked to record it
//! (`make image-lock`), so a changed mirror can never slip a different file into an image.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::board::Pin;
use crate::error::{Error, Result};

/// One locked package file.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Locked {
    pub package: String,
    pub version: String,
    pub arch: String,
    pub sha256: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LockFile {
    #[serde(default)]
    package: Vec<Locked>,
}

/// The lock file in memory.
#[derive(Debug)]
pub struct Lock {
    pub path: PathBuf,
    pub entries: Vec<Locked>,
}

impl Lock {
    /// Read the lock file; a missing file is an empty lock.
    pub fn load(path: &Path) -> Result<Lock> {
        let entries = match std::fs::read_to_string(path) {
            Ok(text) => {
                let file: LockFile = toml::from_str(&text).map_err(|e| Error::Parse {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                })?;
                file.package
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(Error::io(path, e)),
        };
        Ok(Lock {
            path: path.to_path_buf(),
            entries,
        })
    }

    /// The locked sha256 of a pin, if any.
    pub fn get(&self, pin: &Pin) -> Option<&str> {
        self.entries
            .iter()
            .find(|l| l.package == pin.package && l.version == pin.version && l.arch == pin.arch)
            .map(|l| l.sha256.as_str())
    }

    /// Record (or replace) the sha256 of a pin.
    pub fn set(&mut self, pin: &Pin, sha256: &str) {
        self.entries.retain(|l| {
            !(l.package == pin.package && l.arch == pin.arch && l.version == pin.version)
        });
        self.entries.push(Locked {
            package: pin.package.clone(),
            version: pin.version.clone(),
            arch: pin.arch.clone(),
            sha256: sha256.to_string(),
        });
        self.entries.sort_by(|a, b| {
            (&a.package, &a.arch, &a.version).cmp(&(&b.package, &b.arch, &b.version))
        });
    }

    /// Write the lock file back, sorted, with a header.
    pub fn save(&self) -> Result<()> {
        let mut out = String::from(
            "# sha256 of every Debian package file the image builder uses (board/*/board.toml pins the\n\
             # versions). Checked on every build; `make image-lock BOARD=<name>` records new pins.\n",
        );
        for l in &self.entries {
            out.push_str(&format!(
                "\n[[package]]\npackage = {:?}\nversion = {:?}\narch = {:?}\nsha256 = {:?}\n",
                l.package, l.version, l.arch, l.sha256
            ));
        }
        std::fs::write(&self.path, out).map_err(|e| Error::io(&self.path, e))
    }
}
