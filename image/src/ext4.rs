//! The ext4 data partition, made by `mke2fs` from e2fsprogs on a plain file (no root, no loop
//! device): fixed label, UUID and directory hash seed, the time pinned with
//! `E2FSPROGS_FAKE_TIME`, the feature set from `image/mke2fs.conf` (never the host's
//! `/etc/mke2fs.conf`). The filesystem is empty; init creates its folders on first boot. An
//! empty filesystem avoids `mke2fs -d`, which copies inode change times that cannot be pinned.

use std::path::Path;
use std::process::Command;

use crate::error::{Error, Result};

/// Label of the data partition (init finds it by this label).
pub const LABEL: &str = "boma-data";

/// The boot partition's gzipped copy of the empty data partition, which init writes back over
/// a data partition that e2fsck cannot repair.
pub const PRISTINE: &str = "boma-data.ext4.gz";

/// gzip `data` reproducibly (no name, mtime 0): mostly zeros, it shrinks about a thousandfold.
pub fn gzip(data: &[u8]) -> Result<Vec<u8>> {
    crate::initramfs::gzip_bytes(PRISTINE, data)
}

/// Make an ext4 filesystem of `size` bytes in `path` (created or truncated).
pub fn build(path: &Path, size: u64, uuid: &str, time: u64, config: &Path) -> Result<Vec<u8>> {
    let file = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    file.set_len(size).map_err(|e| Error::io(path, e))?;
    drop(file);
    let command = format!("mke2fs -t ext4 {}", path.display());
    let out = Command::new("mke2fs")
        .env("MKE2FS_CONFIG", config)
        .env("E2FSPROGS_FAKE_TIME", time.to_string())
        .args([
            "-q", "-F", "-t", "ext4", "-b", "4096", "-m", "1", "-L", LABEL, "-U", uuid,
        ])
        .arg("-E")
        .arg(format!(
            "hash_seed={uuid},root_owner=0:0,nodiscard,lazy_itable_init=0"
        ))
        .arg(path)
        .output()
        .map_err(|e| Error::Command {
            command: command.clone(),
            message: format!("{e} (install e2fsprogs: scripts/image-deps.sh)"),
        })?;
    if !out.status.success() {
        return Err(Error::Command {
            command,
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    std::fs::read(path).map_err(|e| Error::io(path, e))
}
