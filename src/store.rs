//! Durable writes of persistent state (DHCP leases, the local CA's certificate and key): a file is replaced whole or not at all, and once [`write_durably`] returns, the new
//! content survives a power cut.
//!
//! The sequence is the classic one: write a temporary file next to the target, `fsync` it,
//! `rename` it over the target, `fsync` the directory so the rename itself is on disk. A crash
//! at any point leaves either the old or the new file, never a mix; a leftover temporary file is
//! removed by the next write. This module only writes bytes: it knows nothing of their format
//! and never reads them back.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Replace `path` with `bytes` durably (see the module docs). The parent directory must exist.
pub fn write_durably(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_with_mode(path, bytes, 0o644)
}

/// [`write_durably`] for a secret (a private key): readable and writable by its owner only,
/// from the first byte written.
pub fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_with_mode(path, bytes, 0o600)
}

fn write_with_mode(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = parent(path);
    let tmp = temp_path(path);
    let result = (|| {
        // A temporary file left by a crash may have another mode: start from none.
        let _ = fs::remove_file(&tmp);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)?;
        sync_dir(&dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Create `dir` (and its parents) if missing, durably: the new directory entries are synced.
pub fn ensure_dir(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir)?;
    sync_dir(&parent(dir))
}

/// The temporary file a write goes through: `.<name>.tmp` in the same directory (a rename is
/// atomic only within one file system).
fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "state".into());
    parent(path).join(format!(".{name}.tmp"))
}

fn parent(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// `fsync` a directory, so that renames and new entries in it are on disk.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("leases");
        write_durably(&path, b"one\n").expect("first write");
        write_durably(&path, b"two\n").expect("second write");
        assert_eq!(fs::read(&path).expect("read"), b"two\n");
        let names: Vec<_> = fs::read_dir(dir.path())
            .expect("list")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, ["leases"], "only the target is left");
    }

    #[test]
    fn a_missing_directory_is_an_error_and_ensure_dir_makes_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a/b/leases");
        assert!(write_durably(&path, b"x").is_err());
        ensure_dir(&dir.path().join("a/b")).expect("mkdir");
        write_durably(&path, b"x").expect("write");
        assert_eq!(fs::read(&path).expect("read"), b"x");
    }
}
