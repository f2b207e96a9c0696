//! The initramfs, the image's root filesystem in RAM: busybox-static, e2fsck-static, the static
//! `boma` binary, the kernel modules it carries (flat in `/lib/modules/<abi>/` with the `modules.dep`,
//! `modules.alias` and `modules.builtin` that busybox modprobe reads; `/etc/modules.preload`
//! names those init loads in the background), `/lib/firmware` (firmware given to the builder), `/dev/console`, and the overlay
//! (`image/overlay/`: `/init`, inittab, rcS/rcK, mdev.conf, boma-supervise, the built-in
//! `boma.toml`). Compressed with gzip (level 9, no name, mtime 0) so the bytes depend only on
//! the contents.

use std::io::Write;
use std::path::Path;

use flate2::{Compression, GzBuilder};

use crate::cpio::Archive;
use crate::error::{Error, Result};
use crate::kmod::Module;
use crate::modalias;

/// What goes into the initramfs.
pub struct Contents<'a> {
    pub busybox: Vec<u8>,
    /// Debian's static e2fsck (`/usr/sbin/e2fsck`).
    pub e2fsck: Vec<u8>,
    pub boma: Vec<u8>,
    /// The kernel's ABI name (`6.1.0-56-arm64`): `uname -r`, modprobe's folder.
    pub abi: &'a str,
    pub modules: &'a [&'a Module],
    /// Listed in `modules.dep` and `modules.alias` without their files, which the Wi-Fi archive
    /// brings.
    pub listed_only: &'a [&'a Module],
    /// `modules.builtin` of the kernel package.
    pub builtin: &'a [u8],
    /// Loaded in the background after boma starts (`/etc/modules.preload`).
    pub preload: &'a [String],
    /// `/lib/firmware/<path>`: firmware the builder was given (`--firmware`).
    pub firmware: Vec<(String, Vec<u8>)>,
    pub overlay: &'a Path,
    /// `/etc/boma-release`: what this image was built from.
    pub release: String,
}

/// Build the cpio archive (not yet compressed).
pub fn archive(c: &Contents<'_>) -> Result<Archive> {
    let mut a = Archive::new();
    for d in [
        "bin",
        "sbin",
        "usr/bin",
        "usr/sbin",
        "proc",
        "sys",
        "dev",
        "run",
        "tmp",
        "boot",
        "data",
        "root",
        "lib/modules",
    ] {
        a.dir(d);
    }
    a.char_dev("dev/console", 5, 1, 0o600);
    a.char_dev("dev/null", 1, 3, 0o666);
    a.file("bin/busybox", c.busybox.clone(), true);
    a.file("usr/sbin/e2fsck", c.e2fsck.clone(), true);
    a.file("usr/bin/boma", c.boma.clone(), true);
    let dir = format!("lib/modules/{}", c.abi);
    a.dir(&dir);
    for m in c.modules {
        a.file(&format!("{dir}/{}.ko", m.name), m.bytes.clone(), false);
    }
    let listed: Vec<&Module> = c.modules.iter().chain(c.listed_only).copied().collect();
    let dep = modalias::modules_dep(&listed);
    a.file(&format!("{dir}/modules.dep"), dep.into_bytes(), false);
    let alias = modalias::modules_alias(&listed);
    a.file(&format!("{dir}/modules.alias"), alias.into_bytes(), false);
    a.file(&format!("{dir}/modules.builtin"), c.builtin.to_vec(), false);
    for (path, bytes) in &c.firmware {
        a.file(&format!("lib/firmware/{path}"), bytes.clone(), false);
    }
    let mut preload = c.preload.join("\n");
    preload.push('\n');
    a.file("etc/modules.preload", preload.into_bytes(), false);
    a.file("etc/boma-release", c.release.clone().into_bytes(), false);
    a.file(
        "etc/passwd",
        b"root:x:0:0:root:/root:/bin/sh\n".to_vec(),
        false,
    );
    a.file("etc/group", b"root:x:0:\n".to_vec(), false);
    a.file(
        "etc/profile",
        b"export PATH=/sbin:/bin:/usr/sbin:/usr/bin\nexport PS1='boma# '\necho 'boma rescue shell: /boot (read-only) has boma.toml, /data is the data partition; poweroff or reboot when done.'\n"
            .to_vec(),
        false,
    );
    add_overlay(&mut a, c.overlay, "")?;
    Ok(a)
}

fn add_overlay(a: &mut Archive, root: &Path, rel: &str) -> Result<()> {
    let dir = root.join(rel);
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))? {
        names.push(entry.map_err(|e| Error::io(&dir, e))?.file_name());
    }
    names.sort();
    for name in names {
        let name = name.to_string_lossy();
        let rel = if rel.is_empty() {
            name.to_string()
        } else {
            format!("{rel}/{name}")
        };
        let path = root.join(&rel);
        let meta = std::fs::metadata(&path).map_err(|e| Error::io(&path, e))?;
        if meta.is_dir() {
            a.dir(&rel);
            add_overlay(a, root, &rel)?;
        } else {
            use std::os::unix::fs::PermissionsExt;
            let data = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
            a.file(&rel, data, meta.permissions().mode() & 0o111 != 0);
        }
    }
    Ok(())
}

/// Every regular file under `root`, by path relative to it (sorted; for `--firmware`).
pub fn read_tree(root: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    let mut dirs = vec![String::new()];
    while let Some(rel) = dirs.pop() {
        let dir = root.join(&rel);
        for entry in std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))? {
            let entry = entry.map_err(|e| Error::io(&dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let path = root.join(&rel);
            let meta = std::fs::metadata(&path).map_err(|e| Error::io(&path, e))?;
            if meta.is_dir() {
                dirs.push(rel);
            } else if meta.is_file() {
                out.push((rel, std::fs::read(&path).map_err(|e| Error::io(&path, e))?));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// gzip the archive reproducibly.
pub fn gzip(archive: &Archive, mtime: u32) -> Result<Vec<u8>> {
    gzip_bytes("initrd.img", &archive.to_bytes(mtime))
}

/// `data` gzipped at level 9 with no name and mtime 0, so the bytes depend only on `data`.
pub fn gzip_bytes(what: &str, data: &[u8]) -> Result<Vec<u8>> {
    let mut gz = GzBuilder::new()
        .mtime(0)
        .operating_system(3)
        .write(Vec::with_capacity(data.len() / 2), Compression::best());
    gz.write_all(data)
        .and_then(|_| gz.finish())
        .map_err(|e| Error::io(what, e))
}
