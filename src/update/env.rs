//! U-Boot's environment format, which boma shares with the boot script: the A/B state lives in
//! a small file on the boot partition that U-Boot reads with `env import -c` and writes with
//! `env export -c` + `fatwrite`, and that boma reads and writes here. A block of `size` bytes:
//! a little-endian CRC-32 (IEEE, zlib's) of the rest, then `name=value` entries each ended by a
//! NUL, an empty entry (a second NUL) ending the list, and padding. No flags byte: that belongs
//! to U-Boot's redundant-environment builds, which Debian's are not; boma keeps two copies
//! itself instead ([`read_pair`], [`write_pair`]): a write that a power cut tears leaves one
//! copy whole, old or new.
//!
//! Pure data plus two small file routines; nothing here knows what the variables mean.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

/// The size of boma's state files (U-Boot's `env export -s 0x1000`).
pub const STATE_SIZE: usize = 0x1000;
/// The largest environment boma reads (U-Boot's on qemu_arm64 is 256 KiB).
pub const MAX_SIZE: usize = 256 * 1024;

/// Why an environment block was refused.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error("{0} bytes is not an environment size (8 to {MAX_SIZE})")]
    Size(usize),
    #[error("CRC mismatch: the block says {stored:08x}, its contents give {actual:08x}")]
    Crc { stored: u32, actual: u32 },
    #[error("entry {0:?} has no `=`")]
    NoEquals(String),
    #[error("the entries do not end with an empty one inside the block")]
    Unterminated,
    #[error("variable name {0:?} is empty or holds `=` or NUL")]
    BadName(String),
    #[error("the value of {0} holds a NUL")]
    BadValue(String),
    #[error("the variables take {need} bytes, more than the block's {size}")]
    TooBig { need: usize, size: usize },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// CRC-32 as zlib and U-Boot compute it (reflected, polynomial 0xEDB88320).
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & 0u32.wrapping_sub(crc & 1));
        }
    }
    !crc
}

/// The variables of a block (its size is the slice's length).
pub fn decode(block: &[u8]) -> Result<BTreeMap<String, String>, EnvError> {
    if !(8..=MAX_SIZE).contains(&block.len()) {
        return Err(EnvError::Size(block.len()));
    }
    let stored = u32::from_le_bytes([block[0], block[1], block[2], block[3]]);
    let actual = crc32(&block[4..]);
    if stored != actual {
        return Err(EnvError::Crc { stored, actual });
    }
    let mut vars = BTreeMap::new();
    let mut rest = &block[4..];
    loop {
        let Some(end) = rest.iter().position(|&b| b == 0) else {
            return Err(EnvError::Unterminated);
        };
        if end == 0 {
            return Ok(vars);
        }
        let entry = String::from_utf8_lossy(&rest[..end]).into_owned();
        let Some((name, value)) = entry.split_once('=') else {
            return Err(EnvError::NoEquals(entry));
        };
        vars.insert(name.to_string(), value.to_string());
        rest = &rest[end + 1..];
    }
}

/// A block of `size` bytes holding `vars` (sorted by name, as U-Boot writes them), zero-padded.
pub fn encode(vars: &BTreeMap<String, String>, size: usize) -> Result<Vec<u8>, EnvError> {
    if !(8..=MAX_SIZE).contains(&size) {
        return Err(EnvError::Size(size));
    }
    let mut body = Vec::with_capacity(size - 4);
    for (name, value) in vars {
        if name.is_empty() || name.contains(['=', '\0']) {
            return Err(EnvError::BadName(name.clone()));
        }
        if value.contains('\0') {
            return Err(EnvError::BadValue(name.clone()));
        }
        body.extend_from_slice(name.as_bytes());
        body.push(b'=');
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    if body.len() > size - 4 {
        return Err(EnvError::TooBig {
            need: body.len() + 4,
            size,
        });
    }
    body.resize(size - 4, 0);
    let mut block = crc32(&body).to_le_bytes().to_vec();
    block.extend_from_slice(&body);
    Ok(block)
}

fn io(path: &Path, source: std::io::Error) -> EnvError {
    EnvError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn read_one(path: &Path, size: usize) -> Result<BTreeMap<String, String>, EnvError> {
    let mut f = std::fs::File::open(path).map_err(|e| io(path, e))?;
    let mut block = Vec::with_capacity(size);
    (&mut f)
        .take(size as u64)
        .read_to_end(&mut block)
        .map_err(|e| io(path, e))?;
    if block.len() != size {
        return Err(EnvError::Size(block.len()));
    }
    decode(&block)
}

/// Which copy [`read_pair`] took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    Primary,
    Backup,
}

/// The variables of `primary`, or of `backup` when the primary is missing or broken (the
/// primary's error is returned when neither is whole).
pub fn read_pair(
    primary: &Path,
    backup: &Path,
    size: usize,
) -> Result<(BTreeMap<String, String>, Which), EnvError> {
    match read_one(primary, size) {
        Ok(vars) => Ok((vars, Which::Primary)),
        Err(first) => match read_one(backup, size) {
            Ok(vars) => Ok((vars, Which::Backup)),
            Err(_) => Err(first),
        },
    }
}

/// Write `vars` to `primary`, then to `backup`, each in place (the files keep their clusters on
/// FAT, as U-Boot's `fatwrite` keeps them) and flushed to the disk before the next.
pub fn write_pair(
    primary: &Path,
    backup: &Path,
    vars: &BTreeMap<String, String>,
    size: usize,
) -> Result<(), EnvError> {
    let block = encode(vars, size)?;
    for path in [primary, backup] {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| io(path, e))?;
        f.seek(SeekFrom::Start(0)).map_err(|e| io(path, e))?;
        f.write_all(&block).map_err(|e| io(path, e))?;
        f.set_len(size as u64).map_err(|e| io(path, e))?;
        f.sync_all().map_err(|e| io(path, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        (pairs.iter())
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn crc_is_zlibs() {
        // The check value of CRC-32/ISO-HDLC.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn blocks_round_trip_and_are_laid_out_as_u_boot_writes_them() {
        let v = vars(&[("boma_try", "B"), ("boma_slot", "A"), ("boma_tries", "3")]);
        let block = encode(&v, STATE_SIZE).expect("encode");
        assert_eq!(block.len(), STATE_SIZE);
        let want = b"boma_slot=A\0boma_tries=3\0boma_try=B\0\0\0\0";
        assert_eq!(&block[4..4 + want.len()], want);
        assert_eq!(decode(&block).expect("decode"), v);
        // An empty environment is one NUL.
        let empty = encode(&BTreeMap::new(), 16).expect("empty");
        assert_eq!(decode(&empty).expect("decode").len(), 0);
    }

    #[test]
    fn damaged_or_impossible_blocks_are_refused() {
        let v = vars(&[("a", "1")]);
        let mut block = encode(&v, 64).expect("encode");
        block[10] ^= 1;
        assert!(matches!(decode(&block), Err(EnvError::Crc { .. })));
        assert!(matches!(decode(&[0; 4]), Err(EnvError::Size(4))));
        // No terminating empty entry: a block full of `x`.
        let mut full = vec![b'x'; 64];
        let crc = crc32(&full[4..]).to_le_bytes();
        full[..4].copy_from_slice(&crc);
        assert!(matches!(decode(&full), Err(EnvError::Unterminated)));
        let mut noeq = b"\0\0\0\0junk\0\0".to_vec();
        let crc = crc32(&noeq[4..]).to_le_bytes();
        noeq[..4].copy_from_slice(&crc);
        assert!(matches!(decode(&noeq), Err(EnvError::NoEquals(_))));
        assert!(matches!(
            encode(&vars(&[("a=b", "1")]), 64),
            Err(EnvError::BadName(_))
        ));
        assert!(matches!(
            encode(&vars(&[("a", &"x".repeat(100))]), 64),
            Err(EnvError::TooBig { .. })
        ));
    }

    #[test]
    fn a_torn_primary_leaves_the_backup() {
        let dir = std::env::temp_dir().join(format!("boma-env-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let (p, b) = (dir.join("abstate.env"), dir.join("abstate.bak"));
        let old = vars(&[("boma_slot", "A")]);
        write_pair(&p, &b, &old, STATE_SIZE).expect("write");
        assert_eq!(
            read_pair(&p, &b, STATE_SIZE).expect("read"),
            (old.clone(), Which::Primary)
        );
        // A power cut in the next write of the primary: the new CRC reached the disk, the new
        // entries did not.
        let new = encode(&vars(&[("boma_slot", "B")]), STATE_SIZE).expect("encode");
        let mut torn = std::fs::read(&p).expect("read");
        torn[..4].copy_from_slice(&new[..4]);
        std::fs::write(&p, &torn).expect("tear");
        assert_eq!(
            read_pair(&p, &b, STATE_SIZE).expect("read"),
            (old, Which::Backup)
        );
        std::fs::remove_file(&b).expect("rm");
        assert!(matches!(
            read_pair(&p, &b, STATE_SIZE),
            Err(EnvError::Crc { .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
