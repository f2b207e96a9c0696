//! Reading files out of a `.deb` without unpacking it to disk: `dpkg-deb --fsys-tarfile` gives
//! the data tarball (whatever its compression), the `tar` crate walks it, and a filter chooses
//! which regular files are kept in memory. Paths are returned without the leading `./`.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::error::{Error, Result};

/// Regular files of the package whose path `keep` accepts, by path (sorted).
pub fn read_files(
    deb: &Path,
    mut keep: impl FnMut(&str) -> bool,
) -> Result<BTreeMap<String, Vec<u8>>> {
    let command = format!("dpkg-deb --fsys-tarfile {}", deb.display());
    let mut child = Command::new("dpkg-deb")
        .arg("--fsys-tarfile")
        .arg(deb)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Command {
            command: command.clone(),
            message: e.to_string(),
        })?;
    let stdout = child.stdout.take().ok_or_else(|| Error::Command {
        command: command.clone(),
        message: "no stdout".into(),
    })?;
    let mut files = BTreeMap::new();
    let mut archive = tar::Archive::new(stdout);
    let entries = archive.entries().map_err(|e| Error::io(deb, e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| Error::io(deb, e))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path().map_err(|e| Error::io(deb, e))?;
        let path = path.to_string_lossy();
        let path = path.trim_start_matches("./").to_string();
        if keep(&path) {
            let mut bytes = Vec::new();
            entry
                .read_to_end(&mut bytes)
                .map_err(|e| Error::io(deb, e))?;
            files.insert(path, bytes);
        }
    }
    let out = child.wait_with_output().map_err(|e| Error::Command {
        command: command.clone(),
        message: e.to_string(),
    })?;
    if !out.status.success() {
        return Err(Error::Command {
            command,
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(files)
}
