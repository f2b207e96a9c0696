//! Update bundles, as boma-image writes them and boma reads them (src/update/bundle.rs):
//!
//! ```text
//! "BOMABDL1"                 8 bytes, the format
//! manifest length            u32, big-endian, 1 to 65,536
//! manifest                   TOML: board, version, created, [[files]] name, size, sha256
//! signature                  64 bytes: ed25519 over everything above
//! payload                    one gzip member: the files' bytes, in the manifest's order
//! ```
//!
//! The signature covers the manifest and the manifest the files' digests, so the box checks
//! the signature before it writes a byte and each file's digest before it switches slots,
//! reading the bundle once, as a stream. Files are a slot's: `vmlinuz`, `initrd.img` and, on
//! Wi-Fi boards, `boma-wifi.cpio.gz`.

use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use ring::signature::Ed25519KeyPair;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::fetch::sha256_hex;

/// The first bytes of every bundle.
pub const MAGIC: &[u8; 8] = b"BOMABDL1";
/// The longest manifest a reader accepts.
pub const MAX_MANIFEST: usize = 64 * 1024;

/// What the bundle is for.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub board: String,
    pub version: String,
    /// Unix seconds (SOURCE_DATE_EPOCH).
    pub created: u64,
}

#[derive(Serialize)]
struct ManifestFile<'a> {
    board: &'a str,
    version: &'a str,
    created: u64,
    files: Vec<FileEntry<'a>>,
}

#[derive(Serialize)]
struct FileEntry<'a> {
    name: &'a str,
    size: u64,
    sha256: String,
}

/// What was written.
#[derive(Debug, Clone)]
pub struct Written {
    pub path: PathBuf,
    pub size: u64,
    pub version: String,
}

/// Whether `v` can be a version: 1 to 64 of `[0-9A-Za-z.+~-]`, starting with a digit or letter.
pub fn check_version(v: &str) -> Result<()> {
    let ok = (1..=64).contains(&v.len())
        && v.starts_with(|c: char| c.is_ascii_alphanumeric())
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || ".+~-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::Layout(format!(
            "version {v:?}: 1 to 64 letters, digits and . + ~ -, starting with a letter or digit"
        )))
    }
}

/// The bytes of a bundle.
pub fn encode(m: &Manifest, files: &[(String, Vec<u8>)], key: &Ed25519KeyPair) -> Result<Vec<u8>> {
    check_version(&m.version)?;
    let manifest = ManifestFile {
        board: &m.board,
        version: &m.version,
        created: m.created,
        files: files
            .iter()
            .map(|(name, bytes)| FileEntry {
                name,
                size: bytes.len() as u64,
                sha256: sha256_hex(bytes),
            })
            .collect(),
    };
    let text = toml::to_string(&manifest).map_err(|e| Error::Layout(format!("manifest: {e}")))?;
    if text.len() > MAX_MANIFEST {
        return Err(Error::Layout("manifest too long".into()));
    }
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&(text.len() as u32).to_be_bytes());
    out.extend_from_slice(text.as_bytes());
    let signature = key.sign(&out);
    out.extend_from_slice(signature.as_ref());
    let mut gz = GzEncoder::new(out, Compression::new(9));
    for (_, bytes) in files {
        gz.write_all(bytes)
            .map_err(|e| Error::io("bundle payload", e))?;
    }
    gz.finish().map_err(|e| Error::io("bundle payload", e))
}

/// Write a bundle to `path` (through a temporary file renamed into place).
pub fn write(
    path: &Path,
    m: &Manifest,
    files: &[(String, Vec<u8>)],
    key: &Ed25519KeyPair,
) -> Result<Written> {
    let bytes = encode(m, files, key)?;
    let tmp = path.with_extension("bundle.tmp");
    std::fs::write(&tmp, &bytes).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    Ok(Written {
        path: path.to_path_buf(),
        size: bytes.len() as u64,
        version: m.version.clone(),
    })
}

/// Re-sign a bundle with another key (`boma-image sign`): the manifest and payload stay.
pub fn resign(bytes: &mut [u8], key: &Ed25519KeyPair) -> Result<()> {
    let bad = || Error::Layout("not a boma bundle".into());
    if bytes.get(..8) != Some(&MAGIC[..]) {
        return Err(bad());
    }
    let len = u32::from_be_bytes(
        bytes
            .get(8..12)
            .ok_or_else(bad)?
            .try_into()
            .map_err(|_| bad())?,
    ) as usize;
    if len == 0 || len > MAX_MANIFEST || bytes.len() < 12 + len + 64 {
        return Err(bad());
    }
    let signature = key.sign(&bytes[..12 + len]);
    bytes[12 + len..12 + len + 64].copy_from_slice(signature.as_ref());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        for ok in ["1", "0.1.0", "2026.11.28-rc1", "v2"] {
            check_version(ok).unwrap();
        }
        for bad in ["", "-1", "1 2", "a/b", &"9".repeat(65)] {
            assert!(check_version(bad).is_err(), "{bad:?}");
        }
    }
}
