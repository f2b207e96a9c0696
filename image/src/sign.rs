//! The update signing key: ed25519 with ring, the private key as a PKCS#8 file that only the
//! operator (or, for development and tests, `target/keys/`) holds, the public key as 64 hex
//! digits in the image (`/etc/boma/update.pub`), where boma checks every bundle against it.

use std::io::Write;
use std::path::Path;

use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair};

use crate::error::{Error, Result};

/// The private key's file name (`boma-image keygen` writes it and `<name>.pub` beside it).
pub const KEY_FILE: &str = "boma-update.key";

fn key_err(path: &Path, message: &str) -> Error {
    Error::Parse {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

/// Make a new key pair at `path` (mode 0600, never over an existing file) and `path.pub`.
/// The key is written whole to a scratch file and then linked into place, so a build running
/// at once sees either no key or the complete one.
pub fn generate(path: &Path) -> Result<Ed25519KeyPair> {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
        .map_err(|_| key_err(path, "no randomness for a new key"))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let scratch = path.with_extension(format!("new-{}", std::process::id()));
    let _ = std::fs::remove_file(&scratch);
    let written = write_private(&scratch, pkcs8.as_ref())
        .and_then(|()| std::fs::hard_link(&scratch, path).map_err(|e| Error::io(path, e)));
    let _ = std::fs::remove_file(&scratch);
    written?;
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
        .map_err(|_| key_err(path, "the new key does not read back"))?;
    let public = path.with_extension("pub");
    let public_scratch = path.with_extension(format!("pub-{}", std::process::id()));
    std::fs::write(&public_scratch, public_hex(&pair) + "\n")
        .and_then(|()| std::fs::rename(&public_scratch, &public))
        .map_err(|e| Error::io(&public, e))?;
    Ok(pair)
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(|e| Error::io(path, e))
}

/// Read the key pair at `path`.
pub fn load(path: &Path) -> Result<Ed25519KeyPair> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    Ed25519KeyPair::from_pkcs8_maybe_unchecked(&bytes)
        .map_err(|e| key_err(path, &format!("not an ed25519 PKCS#8 key ({e})")))
}

/// The key pair at `path`, made there first if it does not exist (the development key).
pub fn load_or_create(path: &Path) -> Result<Ed25519KeyPair> {
    if path.exists() {
        return load(path);
    }
    match generate(path) {
        // Another build made it first: theirs is complete (it was linked in whole).
        Err(_) if path.exists() => load(path),
        made => made,
    }
}

/// The public key as 64 lower-case hex digits.
pub fn public_hex(pair: &Ed25519KeyPair) -> String {
    pair.public_key()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_made_key_reads_back_and_never_overwrites() {
        let dir = std::env::temp_dir().join(format!("boma-sign-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join(super::KEY_FILE);
        let made = super::generate(&path).unwrap();
        let read = super::load_or_create(&path).unwrap();
        assert_eq!(super::public_hex(&made), super::public_hex(&read));
        assert_eq!(super::public_hex(&made).len(), 64);
        let public = std::fs::read_to_string(path.with_extension("pub")).unwrap();
        assert_eq!(public.trim(), super::public_hex(&made));
        assert!(super::generate(&path).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
