//! The FAT32 boot partition, written with the `fatfs` crate into memory: fixed volume ID and
//! label, files created in name order, and (without fatfs' `chrono` feature) every timestamp at
//! the DOS epoch, 1980-01-01, so the bytes are reproducible. Also reads single files back out of
//! a partition of an image file (for the QEMU harness), through a bounded window on the file.

use std::fs::File;
use std::io::{Cursor, Read, Seek, SeekFrom, Write};
use std::path::Path;

use fatfs::{FatType, FileSystem, FormatVolumeOptions, FsOptions};

use crate::error::{Error, Result};

/// Volume label of the boot partition (init finds it by this label).
pub const LABEL: &str = "BOMA-BOOT";

fn fat_err(what: &str, e: std::io::Error) -> Error {
    Error::Fat(format!("{what}: {e}"))
}

/// A FAT32 volume of `size` bytes holding `files` (name, bytes) at its root.
pub fn build(size: u64, volume_id: u32, files: &[(String, Vec<u8>)]) -> Result<Vec<u8>> {
    let len = usize::try_from(size).map_err(|_| Error::Layout("boot partition too big".into()))?;
    let mut disk = Cursor::new(vec![0u8; len]);
    let mut label = [b' '; 11];
    label[..LABEL.len()].copy_from_slice(LABEL.as_bytes());
    fatfs::format_volume(
        &mut disk,
        FormatVolumeOptions::new()
            .fat_type(FatType::Fat32)
            .bytes_per_cluster(2048)
            .volume_id(volume_id)
            .volume_label(label),
    )
    .map_err(|e| fat_err("format", e))?;
    disk.seek(SeekFrom::Start(0))
        .map_err(|e| fat_err("seek", e))?;
    {
        let fs = FileSystem::new(&mut disk, FsOptions::new()).map_err(|e| fat_err("open", e))?;
        {
            let root = fs.root_dir();
            let mut sorted: Vec<_> = files.iter().collect();
            sorted.sort_by(|a, b| a.0.cmp(&b.0));
            for (name, bytes) in sorted {
                // Folders first (`a/vmlinuz`: the slots), each once.
                let mut at = 0;
                while let Some(i) = name[at..].find('/') {
                    let dir = &name[..at + i];
                    root.create_dir(dir).map_err(|e| fat_err(dir, e))?;
                    at += i + 1;
                }
                let mut f = root.create_file(name).map_err(|e| fat_err(name, e))?;
                f.truncate().map_err(|e| fat_err(name, e))?;
                f.write_all(bytes).map_err(|e| fat_err(name, e))?;
                f.flush().map_err(|e| fat_err(name, e))?;
            }
        }
        fs.unmount().map_err(|e| fat_err("unmount", e))?;
    }
    Ok(disk.into_inner())
}

/// A window of a file: bytes `start..start+len`, seen as a whole disk by fatfs (read-only
/// unless `writable`).
struct Window {
    file: File,
    writable: bool,
    start: u64,
    len: u64,
    pos: u64,
}

impl Read for Window {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.len.saturating_sub(self.pos);
        let n = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
        self.file.seek(SeekFrom::Start(self.start + self.pos))?;
        let got = self.file.read(&mut buf[..n])?;
        self.pos += got as u64;
        Ok(got)
    }
}

impl Write for Window {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if !self.writable {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                "read-only",
            ));
        }
        let left = self.len.saturating_sub(self.pos);
        let n = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
        self.file.seek(SeekFrom::Start(self.start + self.pos))?;
        let put = self.file.write(&buf[..n])?;
        self.pos += put as u64;
        Ok(put)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl Seek for Window {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let next = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        match next {
            Some(n) if n <= self.len => {
                self.pos = n;
                Ok(n)
            }
            _ => Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "seek outside the partition",
            )),
        }
    }
}

/// The boot partition of an image file, as fatfs sees it.
fn open(image: &Path, writable: bool) -> Result<FileSystem<Window>> {
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(writable)
        .open(image)
        .map_err(|e| Error::io(image, e))?;
    let mut mbr = [0u8; 512];
    file.read_exact(&mut mbr).map_err(|e| Error::io(image, e))?;
    let parts = crate::mbr::decode(&mbr)?;
    let boot = parts
        .first()
        .ok_or_else(|| Error::Layout("no partition".into()))?;
    let (start, len) = boot.bytes();
    let window = Window {
        file,
        writable,
        start,
        len,
        pos: 0,
    };
    FileSystem::new(window, FsOptions::new()).map_err(|e| fat_err("open", e))
}

/// Read one file (`name`, or `dir/name`) from the first (boot) partition of an image.
pub fn read_file(image: &Path, name: &str) -> Result<Vec<u8>> {
    // fatfs opens read-write; the window refuses any write.
    let fs = open(image, false)?;
    let mut f = fs
        .root_dir()
        .open_file(name)
        .map_err(|e| fat_err(name, e))?;
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes).map_err(|e| fat_err(name, e))?;
    Ok(bytes)
}

/// Replace (or create) one file of the boot partition of an image, as an operator's laptop
/// would (the QEMU harness: `cmdline.env`, `boma.toml`).
pub fn write_file(image: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let fs = open(image, true)?;
    {
        let mut f = fs
            .root_dir()
            .create_file(name)
            .map_err(|e| fat_err(name, e))?;
        f.truncate().map_err(|e| fat_err(name, e))?;
        f.write_all(bytes).map_err(|e| fat_err(name, e))?;
        f.flush().map_err(|e| fat_err(name, e))?;
    }
    fs.unmount().map_err(|e| fat_err("unmount", e))
}
