//! The boot partition's files: the Pi firmware, U-Boot and its script, device trees, slot a, the
//! A/B state, the operator's files and a README, checked against what `config.txt` loads.

use std::collections::BTreeSet;

use super::options::Options;
use super::packages::read_one;
use super::system::System;
use crate::board::Board;
use crate::error::{Error, Result};
use crate::{configtxt, deb, uboot};

/// The boot partition's files: firmware, U-Boot and its script, device trees, slot a (slot b
/// stays empty until the first update), the A/B state, the operator's files.
pub(super) fn boot_files(opts: &Options, sys: &System) -> Result<Vec<(String, Vec<u8>)>> {
    let board = &sys.board;
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    if let (Some(fw), Some(deb_path)) = (&board.firmware, sys.debs.get(4)) {
        let wanted: BTreeSet<String> = board
            .firmware_files
            .iter()
            .map(|f| format!("usr/lib/raspi-firmware/{f}"))
            .collect();
        let got = deb::read_files(deb_path, |p| wanted.contains(p))?;
        for f in &board.firmware_files {
            let bytes = got
                .get(&format!("usr/lib/raspi-firmware/{f}"))
                .ok_or_else(|| Error::Package {
                    package: fw.package.clone(),
                    message: format!("no /usr/lib/raspi-firmware/{f}"),
                })?;
            files.push((f.clone(), bytes.clone()));
        }
    }
    let uboot = read_one(
        &sys.debs[3],
        &board.bootloader.package,
        &board.bootloader_file,
    )?;
    files.push((UBOOT.into(), uboot));
    if board.firmware.is_some() {
        files.push(("uboot.env".into(), uboot::pi_env()?));
    }
    let time32 = u32::try_from(sys.time).unwrap_or(0);
    let script = uboot::script_image(uboot::SCRIPT.as_bytes(), "boma A/B boot", time32)?;
    files.push(("boot.scr".into(), script));
    files.extend(uboot::initial_state()?);
    for (path, bytes) in &sys.dtbs {
        let base = path.rsplit('/').next().unwrap_or(path).to_string();
        files.push((base, bytes.clone()));
    }
    for (name, bytes) in &sys.slot {
        files.push((format!("a/{name}"), bytes.clone()));
    }
    let cmdline = board.file("cmdline.txt")?;
    if board.firmware.is_none() {
        // No firmware puts cmdline.txt into the device tree: the script reads this instead.
        files.push((
            "cmdline.env".into(),
            uboot::cmdline_env(&String::from_utf8_lossy(&cmdline)),
        ));
    }
    files.push(("config.txt".into(), board.file("config.txt")?));
    files.push(("cmdline.txt".into(), cmdline));
    files.push(("boma.toml".into(), sys.boma_toml.clone()));
    let routes = opts.root.join("image/overlay/etc/boma/routes.toml");
    let routes = std::fs::read(&routes).map_err(|e| Error::io(&routes, e))?;
    files.push(("routes.toml".into(), routes));
    files.push(("README.txt".into(), readme(board).into_bytes()));
    if board.firmware.is_some() {
        check_config_txt(board, &files)?;
    }
    Ok(files)
}

/// U-Boot's name on the boot partition (the Pi firmware loads it: `kernel=u-boot.bin`).
pub const UBOOT: &str = "u-boot.bin";

/// Every file the board's `config.txt` makes the Pi firmware load is among `files`.
fn check_config_txt(board: &Board, files: &[(String, Vec<u8>)]) -> Result<()> {
    let text = String::from_utf8_lossy(&board.file("config.txt")?).into_owned();
    let pi4 = board.firmware_files.iter().any(|f| f.starts_with("start4"));
    for need in configtxt::implied(&text, pi4) {
        if !files.iter().any(|(name, _)| *name == need.file) {
            let at = if need.line == 0 {
                "by default".to_string()
            } else {
                format!("line {}: `{}`", need.line, need.because)
            };
            return Err(Error::Parse {
                path: board.dir.join("config.txt"),
                message: format!(
                    "{at} makes the firmware load {}, which is not on the boot partition (add it \
                     to firmware_files or dtbs in board.toml, or change the line)",
                    need.file
                ),
            });
        }
    }
    Ok(())
}

fn readme(board: &Board) -> String {
    format!(
        "boma gateway image for {desc} ({name}).\r\n\r\n\
         boma.toml    the gateway's configuration: edit it here, from any computer.\r\n\
         routes.toml  routes (Traefik's dynamic configuration format).\r\n\
         cmdline.txt  kernel command line: boma.net=dhcp or boma.net=ADDRESS/PREFIX,GATEWAY,DNS.\r\n\
         config.txt   Raspberry Pi firmware settings.\r\n\
         boma-firmware/  your own firmware files (folder tree as under /lib/firmware), for\r\n\
                      radios the image has none for (Zero 2 W Wi-Fi: docs/image.md).\r\n\
         a/, b/       the two system slots (kernel, initramfs, Wi-Fi programs): updates go\r\n\
                      to the one not running; abstate.env/.bak say which boots.\r\n\
         u-boot.bin, boot.scr, *.dtb, *.elf, *.dat, bootcode.bin: the boot chain; do not edit.\r\n\r\n\
         Serial console: {console}, 115200 baud. Guide: docs/image.md in boma's sources.\r\n",
        desc = board.description,
        name = board.name,
        console = board.console
    )
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn board(dir: &Path) -> Board {
        let mut b: Board = toml::from_str(
            r#"
            name = "t"
            description = "t"
            console = "ttyS1"
            kernel = { package = "k", version = "1" }
            busybox = { package = "b", version = "1" }
            e2fsck = { package = "e", version = "1" }
            bootloader = { package = "u", version = "1" }
            bootloader_file = "u-boot.bin"
            firmware = { package = "f", version = "1", arch = "all" }
            firmware_files = ["bootcode.bin", "start.elf", "fixup.dat"]
            "#,
        )
        .unwrap();
        b.dir = dir.to_path_buf();
        b
    }

    #[test]
    fn a_file_config_txt_implies_must_be_shipped() {
        let dir = std::env::temp_dir().join(format!("boma-configtxt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let b = board(&dir);
        let shipped = |names: &[&str]| -> Vec<(String, Vec<u8>)> {
            names.iter().map(|n| (n.to_string(), Vec::new())).collect()
        };
        let base = [
            "bootcode.bin",
            "start.elf",
            "fixup.dat",
            "vmlinuz",
            "initrd.img",
            "a.dtb",
        ];
        std::fs::write(
            dir.join("config.txt"),
            "kernel=vmlinuz\ninitramfs initrd.img followkernel\ndevice_tree=a.dtb\ngpu_mem=16\n",
        )
        .unwrap();
        let err = check_config_txt(&b, &shipped(&base))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("line 4: `gpu_mem=16` makes the firmware load start_cd.elf"),
            "{err}"
        );
        let mut all = base.to_vec();
        all.extend(["start_cd.elf", "fixup_cd.dat"]);
        check_config_txt(&b, &shipped(&all)).unwrap();
        std::fs::write(dir.join("config.txt"), "device_tree=missing.dtb\n").unwrap();
        let err = check_config_txt(&b, &shipped(&all))
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 1: `device_tree=missing.dtb`"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
