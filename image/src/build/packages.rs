//! The board's pinned packages, fetched from the cache or the mirror against the lock, and single
//! files read out of them.

use std::path::{Path, PathBuf};

use super::options::Options;
use crate::board::Board;
use crate::deb;
use crate::error::{Error, Result};
use crate::fetch::fetch;
use crate::lock::Lock;
use crate::wifi::WifiSet;

/// Every package the board pins, and those of its Wi-Fi set, from the cache or the mirror
/// (recording the lock if asked).
pub(super) fn fetch_packages(
    opts: &Options,
    board: &Board,
    wifi: Option<&WifiSet>,
) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let lock_path = opts.root.join("image/packages.lock");
    let mut lock = Lock::load(&lock_path)?;
    let mut get = |pins: Vec<&crate::board::Pin>| -> Result<Vec<PathBuf>> {
        (pins.into_iter())
            .map(|pin| fetch(pin, &opts.cache.join("debs"), &mut lock, opts.record_lock))
            .collect()
    };
    let debs = get(board.pins())?;
    let wifi_debs = get(wifi
        .map(|w| w.packages.iter().collect())
        .unwrap_or_default())?;
    if opts.record_lock {
        lock.save()?;
    }
    Ok((debs, wifi_debs))
}

/// The file at `path` in the package at `deb_path`.
pub(super) fn read_one(deb_path: &Path, package: &str, path: &str) -> Result<Vec<u8>> {
    let mut files = deb::read_files(deb_path, |p| p == path)?;
    files.remove(path).ok_or_else(|| Error::Package {
        package: package.to_string(),
        message: format!("no {path}"),
    })
}
