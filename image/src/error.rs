//! The builder's error type: every failure says what it was doing and on which file or package.
//! No panics on input: a malformed package, board file or image becomes one of these.

use std::path::PathBuf;

/// Everything that can go wrong while building, reading or booting an image.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("board {0:?}: no such folder board/{0}/")]
    UnknownBoard(String),
    #[error("package {package}: {message}")]
    Package { package: String, message: String },
    #[error(
        "package {package} {version}: sha256 {actual} does not match the lock file ({expected})"
    )]
    Checksum {
        package: String,
        version: String,
        expected: String,
        actual: String,
    },
    #[error(
        "package {package} {version} is not in {lock}: run `make image-lock BOARD=...` to record it"
    )]
    NotLocked {
        package: String,
        version: String,
        lock: PathBuf,
    },
    #[error("kernel module {0:?}: neither a module of the kernel package nor built in")]
    UnknownModule(String),
    #[error("kernel module {path}: {message}")]
    BadModule { path: String, message: String },
    #[error("`{command}` failed: {message}")]
    Command { command: String, message: String },
    #[error("image layout: {0}")]
    Layout(String),
    #[error("FAT partition: {0}")]
    Fat(String),
    #[error("QEMU: {0}")]
    Qemu(String),
}

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// Result with the builder's error.
pub type Result<T> = std::result::Result<T, Error>;
