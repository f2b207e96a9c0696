//! The image's initramfs: busybox, e2fsck, boma, the carried kernel modules, the overlay, the
//! firmware folder, the release file, `boma.toml` and the update key, gzipped.

use std::path::PathBuf;

use super::kernel::{Carried, Kernel};
use super::options::Options;
use super::packages::read_one;
use crate::board::{Board, ImageModules};
use crate::error::{Error, Result};
use crate::fetch::sha256_hex;
use crate::initramfs;

/// The gzipped initramfs, with the `boma.toml` it carries (also the boot partition's).
pub(super) struct Initrd {
    pub(super) bytes: Vec<u8>,
    pub(super) boma_toml: Vec<u8>,
    /// Kernel modules it carries.
    pub(super) modules: Vec<String>,
}

pub(super) fn make_initrd(
    opts: &Options,
    board: &Board,
    debs: &[PathBuf],
    kernel: &Kernel,
    carried: &Carried<'_>,
    time32: u32,
    firmware: Vec<(String, Vec<u8>)>,
) -> Result<Initrd> {
    let busybox = read_one(&debs[1], &board.busybox.package, "bin/busybox")?;
    let e2fsck = read_one(&debs[2], &board.e2fsck.package, "sbin/e2fsck.static")?;
    let boma = if opts.broken {
        // What a bad release looks like to the box: a boma that exits at once.
        b"#!/bin/sh\necho 'boma: this build exits at start on purpose (make bundle BREAK=1)' >&2\nexit 70\n".to_vec()
    } else {
        std::fs::read(&opts.boma).map_err(|e| Error::io(&opts.boma, e))?
    };
    let key = crate::sign::load_or_create(&opts.key)?;
    let image_modules = ImageModules::load(&opts.root)?;
    let modules = &carried.initramfs;

    let overlay = opts.root.join("image/overlay");
    crate::bundle::check_version(&opts.version)?;
    let mut release = format!(
        "board={}\nversion={}\nkernel={} {} ({})\nbusybox={} {}\ne2fsck={} {}\nboma-sha256={}\n",
        board.name,
        opts.version,
        board.kernel.package,
        board.kernel.version,
        kernel.abi,
        board.busybox.package,
        board.busybox.version,
        board.e2fsck.package,
        board.e2fsck.version,
        sha256_hex(&boma)
    );
    if let Some(fw) = &board.firmware {
        release.push_str(&format!("firmware={} {}\n", fw.package, fw.version));
    }
    // A board may bring its own boma.toml (qemu-virt: DNS on its known address); otherwise the
    // overlay's. The same file is the boot partition's and the built-in fallback.
    let board_toml = board.dir.join("boma.toml");
    let toml_path = if board_toml.is_file() {
        board_toml
    } else {
        overlay.join("etc/boma/boma.toml")
    };
    let boma_toml = std::fs::read(&toml_path).map_err(|e| Error::io(&toml_path, e))?;
    let mut archive = initramfs::archive(&initramfs::Contents {
        busybox,
        e2fsck,
        boma,
        abi: &kernel.abi,
        modules,
        listed_only: &carried.wifi,
        builtin: &kernel.builtin_file,
        preload: &image_modules.preload,
        firmware,
        overlay: &overlay,
        release,
    })?;
    archive.file("etc/boma/boma.toml", boma_toml.clone(), false);
    archive.file(
        "etc/boma/update.pub",
        crate::sign::public_hex(&key).into_bytes(),
        false,
    );
    Ok(Initrd {
        bytes: initramfs::gzip(&archive, time32)?,
        boma_toml,
        modules: modules.iter().map(|m| m.name.clone()).collect(),
    })
}
