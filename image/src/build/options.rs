//! What to build: the [`Options`] of one build, defaulting to the source tree's binary, output
//! folders and development key.

use std::path::{Path, PathBuf};

/// What to build.
#[derive(Debug, Clone)]
pub struct Options {
    /// The source tree (holds `board/`, `image/`).
    pub root: PathBuf,
    pub board: String,
    /// The static aarch64 boma binary.
    pub boma: PathBuf,
    /// Where the image files go.
    pub out: PathBuf,
    /// Downloaded packages.
    pub cache: PathBuf,
    /// Record packages missing from the lock instead of refusing them.
    pub record_lock: bool,
    /// Write `.img.xz` (and its sum); tests that only boot the image skip it.
    pub compress: bool,
    /// Extra firmware files for the initramfs's `/lib/firmware/` (the folder's tree as it is):
    /// radio firmware Debian does not ship, such as the Zero 2 W's.
    pub firmware: Option<PathBuf>,
    /// The version stamped into the system (`/etc/boma-release`, `boma version`).
    pub version: String,
    /// The update signing key (PKCS#8 ed25519, made on first use): its public half goes into
    /// the image as `/etc/boma/update.pub`; bundles are signed with it.
    pub key: PathBuf,
    /// A system whose boma exits at start (`make bundle BREAK=1`): for the rollback tests.
    pub broken: bool,
}

impl Options {
    /// Defaults for `board` in the source tree `root`: the binary of `make aarch64`, output
    /// under `target/images`, the development key under `target/keys`.
    pub fn new(root: &Path, board: &str) -> Options {
        let target = root.join("target");
        Options {
            root: root.to_path_buf(),
            board: board.to_string(),
            boma: target.join("aarch64-unknown-linux-musl/release/boma"),
            out: target.join("images"),
            cache: target.join("image-cache"),
            record_lock: false,
            compress: true,
            firmware: None,
            version: DEFAULT_VERSION.to_string(),
            key: target.join("keys").join(crate::sign::KEY_FILE),
            broken: false,
        }
    }
}

/// The version of a build that names none.
pub const DEFAULT_VERSION: &str = env!("CARGO_PKG_VERSION");
