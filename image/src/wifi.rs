//! The Wi-Fi part of an image (`image/wifi.toml`, boards with `wifi = true`), one gzipped cpio
//! archive for the boot partition that the image unpacks only when boma.toml has a `[wifi]`
//! section: Debian's hostapd, wpa_supplicant and iw with exactly the glibc libraries their
//! `DT_NEEDED` entries reach, the kernel modules only the radio needs (its driver, cfg80211...),
//! the regulatory database and the board's radio firmware. A gateway without Wi-Fi carries none
//! of it in RAM.
//!
//! Libraries are found by their `DT_SONAME`, not by file name or the packages' symlinks, and
//! written under it (`/lib/aarch64-linux-gnu/<soname>`, a path glibc's loader searches without
//! any cache); the loader goes where the programs' `PT_INTERP` says. A library no package
//! provides, a program or firmware file missing from the packages, is a build error that names
//! it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::board::Pin;
use crate::cpio::Archive;
use crate::error::{Error, Result};
use crate::kmod::Module;
use crate::{deb, elf, initramfs};

/// `image/wifi.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WifiSet {
    pub packages: Vec<Pin>,
    /// `/usr/sbin/<name>` ← path in a package.
    pub programs: BTreeMap<String, String>,
    /// `/lib/firmware/<name>` ← path in a package, on every Wi-Fi board.
    pub firmware: BTreeMap<String, String>,
}

/// What the archive is made from.
pub struct Inputs<'a> {
    /// The fetched packages, in `WifiSet::packages`' order.
    pub debs: &'a [PathBuf],
    /// The board's radio firmware: `/lib/firmware/<name>` ← path in a package.
    pub board_firmware: &'a BTreeMap<String, String>,
    /// The kernel's ABI name (`/lib/modules/<abi>/`).
    pub abi: &'a str,
    /// Kernel modules only the radio needs.
    pub modules: &'a [&'a Module],
}

/// What a Wi-Fi board gets.
pub struct Parts {
    /// `boma-wifi.cpio.gz` for the boot partition.
    pub archive: Vec<u8>,
    /// Bytes of the archive's files, unpacked (what it costs in RAM).
    pub unpacked: u64,
}

/// Name of the archive on the boot partition.
pub const ARCHIVE: &str = "boma-wifi.cpio.gz";

/// The folders glibc's loader searches by default on arm64, as packages ship them.
const LIB_DIRS: [&str; 2] = ["lib/aarch64-linux-gnu/", "usr/lib/aarch64-linux-gnu/"];

impl WifiSet {
    /// Read `image/wifi.toml` under `root`.
    pub fn load(root: &Path) -> Result<WifiSet> {
        let path = root.join("image/wifi.toml");
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        toml::from_str(&text).map_err(|e| Error::Parse {
            path,
            message: e.to_string(),
        })
    }
}

/// A library file directly in one of the loader's folders.
fn is_library(path: &str) -> bool {
    LIB_DIRS.iter().any(|dir| {
        path.strip_prefix(dir)
            .is_some_and(|name| !name.contains('/') && name.contains(".so"))
    })
}

/// Build the archive.
pub fn assemble(set: &WifiSet, inputs: &Inputs<'_>, mtime: u32) -> Result<Parts> {
    let firmware_wanted: BTreeMap<&String, &String> =
        set.firmware.iter().chain(inputs.board_firmware).collect();
    let sources: BTreeSet<&str> = (set.programs.values())
        .chain(firmware_wanted.values().copied())
        .map(String::as_str)
        .collect();
    // Every wanted file and every library, from whichever package has it.
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for deb_path in inputs.debs {
        let got = deb::read_files(deb_path, |p| sources.contains(p) || is_library(p))?;
        files.extend(got);
    }
    let take = |path: &str, what: &str| {
        files.get(path).ok_or_else(|| Error::Package {
            package: "image/wifi.toml".into(),
            message: format!(
                "{what}: no package of image/wifi.toml has {path} as a regular file (a symlink's \
                 target must be named instead)"
            ),
        })
    };
    let libraries = by_soname(&files);
    let mut archive = Archive::new();
    for dir in ["usr", "usr/sbin", "lib", "lib/aarch64-linux-gnu"] {
        archive.dir(dir);
    }
    let mut unpacked = 0u64;
    let mut todo: Vec<(String, String)> = Vec::new();
    let mut interp = None;
    for (name, source) in &set.programs {
        let bytes = take(source, name)?;
        let d = elf::dynamic(bytes).map_err(|message| Error::Package {
            package: source.clone(),
            message,
        })?;
        interp = interp.or(d.interp.clone());
        todo.extend(d.needed.into_iter().map(|n| (n, name.clone())));
        archive.file(&format!("usr/sbin/{name}"), bytes.clone(), true);
        unpacked += bytes.len() as u64;
    }
    let mut done = closure(todo, &libraries)?;
    let interp = interp.ok_or_else(|| Error::Package {
        package: "image/wifi.toml".into(),
        message: "no program names a loader (PT_INTERP)".into(),
    })?;
    let loader = interp.rsplit('/').next().unwrap_or(&interp).to_string();
    done.insert(loader.clone());
    for soname in &done {
        let bytes = libraries.get(soname).ok_or_else(|| Error::Package {
            package: "image/wifi.toml".into(),
            message: format!("the loader {interp} ({soname}) is in no package"),
        })?;
        let path = if *soname == loader {
            interp.trim_start_matches('/').to_string()
        } else {
            format!("lib/aarch64-linux-gnu/{soname}")
        };
        archive.file(&path, (*bytes).clone(), true);
        unpacked += bytes.len() as u64;
    }
    for (name, source) in firmware_wanted {
        let bytes = take(source, name)?;
        archive.file(&format!("lib/firmware/{name}"), bytes.clone(), false);
        unpacked += bytes.len() as u64;
    }
    for m in inputs.modules {
        let path = format!("lib/modules/{}/{}.ko", inputs.abi, m.name);
        archive.file(&path, m.bytes.clone(), false);
        unpacked += m.bytes.len() as u64;
    }
    Ok(Parts {
        archive: initramfs::gzip(&archive, mtime)?,
        unpacked,
    })
}

/// Every ELF library of `files` by its `DT_SONAME` (the first package's copy wins).
fn by_soname(files: &BTreeMap<String, Vec<u8>>) -> BTreeMap<String, &Vec<u8>> {
    let mut libraries = BTreeMap::new();
    for (path, bytes) in files.iter().filter(|(p, _)| is_library(p)) {
        if let Ok(d) = elf::dynamic(bytes)
            && let Some(soname) = d.soname
        {
            libraries.entry(soname).or_insert(bytes);
        } else if elf::is_elf(bytes) {
            note_no_soname(path);
        }
    }
    libraries
}

/// The SONAMEs `todo` (soname, who needs it) reaches through `DT_NEEDED`; a missing one is an
/// error that names who needs it.
fn closure(
    mut todo: Vec<(String, String)>,
    libraries: &BTreeMap<String, &Vec<u8>>,
) -> Result<BTreeSet<String>> {
    let mut done = BTreeSet::new();
    while let Some((soname, wanted_by)) = todo.pop() {
        if !done.insert(soname.clone()) {
            continue;
        }
        let bytes = libraries.get(&soname).ok_or_else(|| Error::Package {
            package: "image/wifi.toml".into(),
            message: format!(
                "{wanted_by} needs {soname}, which no package of image/wifi.toml provides"
            ),
        })?;
        if let Ok(d) = elf::dynamic(bytes) {
            todo.extend(d.needed.into_iter().map(|n| (n, soname.clone())));
        }
    }
    Ok(done)
}

/// An ELF library without a SONAME cannot be found by the loader's name lookup: it is left out.
fn note_no_soname(path: &str) {
    eprintln!("boma-image: {path} has no DT_SONAME; left out of the Wi-Fi archive");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libraries_are_the_loader_folders_direct_children() {
        assert!(is_library("usr/lib/aarch64-linux-gnu/libnl-3.so.200.26.0"));
        assert!(is_library("lib/aarch64-linux-gnu/libc.so.6"));
        assert!(!is_library("usr/lib/aarch64-linux-gnu/gconv/UTF-16.so"));
        assert!(!is_library("usr/lib/aarch64-linux-gnu/libssl.a"));
        assert!(!is_library("usr/sbin/hostapd"));
    }

    #[test]
    fn the_set_parses() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let set = WifiSet::load(&root).expect("image/wifi.toml");
        assert!(
            set.programs.contains_key("hostapd") && set.programs.contains_key("wpa_supplicant")
        );
        assert!(set.firmware.contains_key("regulatory.db"));
    }
}
