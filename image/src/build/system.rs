//! The system a slot holds, shared by the image and the update bundle: the pinned packages
//! fetched, the kernel, the initramfs and the Wi-Fi archive, stamped with the build's time.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::initrd::make_initrd;
use super::kernel::{Kernel, carried_modules, read_kernel};
use super::options::Options;
use super::packages::fetch_packages;
use crate::board::{Board, ImageModules};
use crate::error::{Error, Result};
use crate::initramfs;
use crate::wifi::{self, WifiSet};

/// Timestamp of everything in the image unless `SOURCE_DATE_EPOCH` says otherwise
/// (2025-01-01T00:00:00Z).
pub const DEFAULT_EPOCH: u64 = 1_735_689_600;

fn epoch() -> u64 {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(DEFAULT_EPOCH)
}

/// What goes into a slot (and a bundle), and the rest of the boot partition's inputs.
pub(super) struct System {
    pub(super) board: Board,
    pub(super) debs: Vec<PathBuf>,
    /// The slot's files by name: `vmlinuz`, `initrd.img`, `boma-wifi.cpio.gz` (Wi-Fi boards).
    pub(super) slot: Vec<(String, Vec<u8>)>,
    pub(super) dtbs: BTreeMap<String, Vec<u8>>,
    pub(super) boma_toml: Vec<u8>,
    pub(super) kernel_size: u64,
    pub(super) initrd_size: u64,
    pub(super) modules: Vec<String>,
    pub(super) wifi_modules: Vec<String>,
    pub(super) wifi_size: Option<(u64, u64)>,
    pub(super) time: u64,
}

/// Fetch the pinned packages and make the slot's contents: kernel, initramfs, Wi-Fi archive.
pub(super) fn system(opts: &Options) -> Result<System> {
    let board = Board::load(&opts.root, &opts.board)?;
    let wifi_set = board.wifi.then(|| WifiSet::load(&opts.root)).transpose()?;
    let (debs, wifi_debs) = fetch_packages(opts, &board, wifi_set.as_ref())?;
    let time = epoch();
    let time32 =
        u32::try_from(time).map_err(|_| Error::Layout("SOURCE_DATE_EPOCH too big".into()))?;
    let kernel = read_kernel(&debs[0], &board)?;
    let image_modules = ImageModules::load(&opts.root)?;
    let carried = carried_modules(&board, &image_modules, &kernel)?;
    let wifi = match &wifi_set {
        Some(set) => Some(wifi::assemble(
            set,
            &wifi::Inputs {
                debs: &wifi_debs,
                board_firmware: &board.wifi_firmware,
                abi: &kernel.abi,
                modules: &carried.wifi,
            },
            time32,
        )?),
        None => None,
    };
    let firmware = match &opts.firmware {
        Some(dir) => initramfs::read_tree(dir)?,
        None => Vec::new(),
    };
    let initrd = make_initrd(opts, &board, &debs, &kernel, &carried, time32, firmware)?;
    let wifi_size = wifi.as_ref().map(|w| (w.archive.len() as u64, w.unpacked));
    let wifi_modules = carried.wifi.iter().map(|m| m.name.clone()).collect();
    drop(carried);
    let Kernel { vmlinuz, dtbs, .. } = kernel;
    // Gzipped: U-Boot reads a third of the bytes from the SD card and inflates them faster
    // than it reads (boot.cmd sets kernel_comp_addr_r for booti).
    let vmlinuz = initramfs::gzip_bytes("vmlinuz", &vmlinuz)?;
    let (kernel_size, initrd_size) = (vmlinuz.len() as u64, initrd.bytes.len() as u64);
    let mut slot = vec![
        ("vmlinuz".to_string(), vmlinuz),
        ("initrd.img".to_string(), initrd.bytes),
    ];
    if let Some(w) = wifi {
        slot.push((wifi::ARCHIVE.into(), w.archive));
    }
    Ok(System {
        board,
        debs,
        slot,
        dtbs,
        boma_toml: initrd.boma_toml,
        kernel_size,
        initrd_size,
        modules: initrd.modules,
        wifi_modules,
        wifi_size,
        time,
    })
}
