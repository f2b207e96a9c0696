//! The kernel package's parts the image uses (kernel, device trees, modules), and which of its
//! modules the image carries.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::board::{Board, ImageModules};
use crate::error::{Error, Result};
use crate::kmod::{self, Module};
use crate::{deb, fdt, modalias};

/// The kernel package's parts the image uses.
pub(super) struct Kernel {
    pub(super) abi: String,
    pub(super) vmlinuz: Vec<u8>,
    pub(super) dtbs: BTreeMap<String, Vec<u8>>,
    pub(super) modules: BTreeMap<String, Module>,
    pub(super) builtin: BTreeSet<String>,
    /// `modules.builtin` as the package has it (modprobe reads it).
    pub(super) builtin_file: Vec<u8>,
}

pub(super) fn read_kernel(deb_path: &Path, board: &Board) -> Result<Kernel> {
    let wanted_dtbs: BTreeSet<&str> = board.dtbs.iter().map(String::as_str).collect();
    let files = deb::read_files(deb_path, |p| {
        p.starts_with("boot/vmlinuz-")
            || (p.starts_with("lib/modules/")
                && (p.ends_with(".ko") || p.ends_with("/modules.builtin")))
            || (p.starts_with("usr/lib/linux-image-")
                && p.splitn(4, '/')
                    .nth(3)
                    .is_some_and(|rest| wanted_dtbs.contains(rest)))
    })?;
    let pkg_err = |message: String| Error::Package {
        package: board.kernel.package.clone(),
        message,
    };
    let mut vmlinuz = None;
    let mut dtbs = BTreeMap::new();
    let mut modules = BTreeMap::new();
    let mut builtin = BTreeSet::new();
    let mut builtin_file = Vec::new();
    for (path, bytes) in files {
        if let Some(abi) = path.strip_prefix("boot/vmlinuz-") {
            vmlinuz = Some((abi.to_string(), bytes));
        } else if path.ends_with(".ko") {
            let m = kmod::parse(&path, bytes)?;
            modules.insert(m.name.clone(), m);
        } else if path.ends_with("/modules.builtin") {
            for line in String::from_utf8_lossy(&bytes).lines() {
                let base = line.rsplit('/').next().unwrap_or(line);
                builtin.insert(kmod::normalize(base.trim_end_matches(".ko")));
            }
            builtin_file = bytes;
        } else if let Some(rest) = path.splitn(4, '/').nth(3) {
            dtbs.insert(rest.to_string(), bytes);
        }
    }
    let (abi, vmlinuz) = vmlinuz.ok_or_else(|| pkg_err("no boot/vmlinuz-*".into()))?;
    for d in &board.dtbs {
        if !dtbs.contains_key(d) {
            return Err(pkg_err(format!("no DTB {d}")));
        }
    }
    kmod::link(&mut modules, &builtin);
    Ok(Kernel {
        abi,
        vmlinuz,
        dtbs,
        modules,
        builtin,
        builtin_file,
    })
}

/// The kernel modules an image carries.
pub(super) struct Carried<'k> {
    /// In the initramfs.
    pub(super) initramfs: Vec<&'k Module>,
    /// Only the radio needs them (the Wi-Fi archive carries their files; `modules.dep` and
    /// `modules.alias` list them, so that they load once it is unpacked).
    pub(super) wifi: Vec<&'k Module>,
}

/// The modules the image carries: the drivers the board's device trees call for, the board's
/// own list and the image-wide ones (`image/modules.toml`), with their dependencies; those
/// that only the radio needs apart.
pub(super) fn carried_modules<'k>(
    board: &Board,
    image: &ImageModules,
    kernel: &'k Kernel,
) -> Result<Carried<'k>> {
    let mut wanted = image.wanted(board);
    for (name, dtb) in &kernel.dtbs {
        wanted.extend(modalias::dt_modules(
            &fdt::nodes(name, dtb)?,
            &kernel.modules,
        ));
    }
    let initramfs = kmod::resolve(&wanted, &kernel.modules, &kernel.builtin)?;
    let mut wifi = Vec::new();
    if board.wifi {
        wanted.extend(image.wifi.iter().cloned());
        wanted.extend(board.wifi_modules.iter().cloned());
        let all = kmod::resolve(&wanted, &kernel.modules, &kernel.builtin)?;
        let base: BTreeSet<&str> = initramfs.iter().map(|m| m.name.as_str()).collect();
        wifi = all
            .into_iter()
            .filter(|m| !base.contains(m.name.as_str()))
            .collect();
    }
    Ok(Carried { initramfs, wifi })
}
