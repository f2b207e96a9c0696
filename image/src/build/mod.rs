//! `build()`: one board's image from its pinned packages and the boma binary; `bundle()`: the
//! same system as a signed update bundle.
//!
//! Outputs `boma-<board>.img` (MBR, FAT32 boot and ext4 data partitions, laid out in `disk`),
//! `.img.xz` (xz -T1, deterministic) and `.sha256` (sha256sum format). Every identifier (disk
//! signature, FAT volume ID, ext4 UUID and hash seed) is derived from the board name and every
//! timestamp is fixed, so the same inputs give the same bytes.
//!
//! One module per phase: `options` (what to build), `packages` (fetching the pinned packages),
//! `kernel` (the kernel package and the modules the image carries), `initrd` (the initramfs),
//! `system` (a slot's contents, shared with bundles), `boot` (the boot partition's files),
//! `disk` (the data partition, the boot partition and the MBR in one file) and `sums` (`.xz` and
//! `.sha256`).

mod boot;
mod disk;
mod initrd;
mod kernel;
mod options;
mod packages;
mod sums;
mod system;

use std::path::PathBuf;
use std::time::Instant;

use boot::boot_files;
use disk::write_image;
use kernel::{carried_modules, read_kernel};
use packages::fetch_packages;
use sums::checksums;
use system::system;

use crate::board::{Board, ImageModules};
use crate::error::{Error, Result};

pub use boot::UBOOT;
pub use disk::{BOOT_SIZE, BOOT_START, DATA_SIZE, DATA_START, IMAGE_SIZE, data_uuid};
pub use options::{DEFAULT_VERSION, Options};
pub use system::DEFAULT_EPOCH;

/// What was built.
#[derive(Debug, Clone)]
pub struct Report {
    pub image: PathBuf,
    pub xz: PathBuf,
    pub sums: PathBuf,
    pub image_size: u64,
    pub xz_size: u64,
    pub initrd_size: u64,
    pub kernel_size: u64,
    /// Kernel modules the initramfs carries, by name.
    pub modules: Vec<String>,
    /// Kernel modules the Wi-Fi archive carries, by name.
    pub wifi_modules: Vec<String>,
    /// Wi-Fi boards: `boma-wifi.cpio.gz`'s size, and its files' size unpacked.
    pub wifi_size: Option<(u64, u64)>,
    pub sha256: String,
    pub seconds: f64,
}

/// Build the image of one board: fetch the pinned packages, make the initramfs, the boot
/// partition (U-Boot, its script, slot a, the A/B state) and the data partition, write the disk
/// image, then compress and checksum it.
pub fn build(opts: &Options) -> Result<Report> {
    let started = Instant::now();
    let sys = system(opts)?;
    let files = boot_files(opts, &sys)?;
    let stem = format!("boma-{}", sys.board.name);
    let image = write_image(opts, &sys.board, &stem, files, sys.time)?;
    let sums = checksums(opts, &stem, &image)?;
    Ok(Report {
        image,
        xz: sums.xz,
        sums: sums.path,
        image_size: sums.image_size,
        xz_size: sums.xz_size,
        initrd_size: sys.initrd_size,
        kernel_size: sys.kernel_size,
        modules: sys.modules,
        wifi_modules: sys.wifi_modules,
        wifi_size: sys.wifi_size,
        sha256: sums.sha256,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Build the update bundle of one board (`boma-<board>-<version>.bundle` in `opts.out`): the
/// same slot contents an image of these options boots, signed with `opts.key`.
pub fn bundle(opts: &Options) -> Result<crate::bundle::Written> {
    let sys = system(opts)?;
    let key = crate::sign::load_or_create(&opts.key)?;
    std::fs::create_dir_all(&opts.out).map_err(|e| Error::io(&opts.out, e))?;
    let path = opts
        .out
        .join(format!("boma-{}-{}.bundle", sys.board.name, opts.version));
    crate::bundle::write(
        &path,
        &crate::bundle::Manifest {
            board: sys.board.name.clone(),
            version: opts.version.clone(),
            created: sys.time,
        },
        &sys.slot,
        &key,
    )
}

/// The kernel modules `opts`'s board would carry, by name, without building the image (for the
/// tests).
pub fn carried(opts: &Options) -> Result<Vec<String>> {
    let board = Board::load(&opts.root, &opts.board)?;
    let (debs, _) = fetch_packages(opts, &board, None)?;
    let kernel = read_kernel(&debs[0], &board)?;
    let image_modules = ImageModules::load(&opts.root)?;
    let carried = carried_modules(&board, &image_modules, &kernel)?;
    let all = carried.initramfs.iter().chain(&carried.wifi);
    Ok(all.map(|m| m.name.clone()).collect())
}
