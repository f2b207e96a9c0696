//! `board/<name>/board.toml`: which packages (pinned), firmware files, DTBs and kernel modules go
//! into a board's image, and its serial console. `config.txt` and `cmdline.txt` beside it are
//! copied to the boot partition as they are.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};

/// One pinned Debian package.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Pin {
    pub package: String,
    pub version: String,
    /// Debian architecture of the package file: `arm64` (default) or `all`.
    #[serde(default = "arm64")]
    pub arch: String,
}

fn arm64() -> String {
    "arm64".to_string()
}

/// A board description, `board/<name>/board.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Board {
    pub name: String,
    pub description: String,
    /// Serial console device in Linux (`ttyAMA0`, `ttyS1`).
    pub console: String,
    pub kernel: Pin,
    pub busybox: Pin,
    /// e2fsck-static: the data partition is checked with its `e2fsck` before it is mounted.
    pub e2fsck: Pin,
    /// Debian's U-Boot (`u-boot-rpi`, `u-boot-qemu`): it picks the A/B slot and boots it.
    pub bootloader: Pin,
    /// The U-Boot binary in that package, put on the boot partition as `u-boot.bin`.
    pub bootloader_file: String,
    /// raspi-firmware, for the Raspberry Pi boards.
    #[serde(default)]
    pub firmware: Option<Pin>,
    /// Files of `/usr/lib/raspi-firmware/` put on the boot partition.
    #[serde(default)]
    pub firmware_files: Vec<String>,
    /// DTBs under `/usr/lib/linux-image-<abi>/` put at the boot partition's root.
    #[serde(default)]
    pub dtbs: Vec<String>,
    /// Kernel modules to carry that no DTB of the board names (dependencies are added): they
    /// are loaded by alias like every other, this list only puts them in the image.
    #[serde(default)]
    pub modules: Vec<String>,
    /// The board has a USB host port: carry `image/modules.toml`'s `usb` set (USB Ethernet).
    #[serde(default)]
    pub usb: bool,
    /// The board has a radio: carry `image/wifi.toml` (hostapd, wpa_supplicant, the regulatory
    /// database) and `image/modules.toml`'s `wifi` modules.
    #[serde(default)]
    pub wifi: bool,
    /// The radio's driver, and what else only the radio needs (in the Wi-Fi archive, found by
    /// alias once it is unpacked).
    #[serde(default)]
    pub wifi_modules: Vec<String>,
    /// The radio's firmware: `/lib/firmware/<name>` in the Wi-Fi archive ← path in a package of
    /// `image/wifi.toml`, under the names the driver asks for.
    #[serde(default)]
    pub wifi_firmware: BTreeMap<String, String>,
    /// Whether the board has a hardware watchdog driver among its modules.
    #[serde(default)]
    pub watchdog: bool,
    /// Where the board folder is (not in the file).
    #[serde(skip)]
    pub dir: PathBuf,
}

/// `image/modules.toml`: the kernel modules every image carries besides what its device trees
/// and board file call for.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageModules {
    /// Every board.
    pub carry: Vec<String>,
    /// Boards with `usb = true`.
    pub usb: Vec<String>,
    /// Boards with `wifi = true`, in the Wi-Fi archive with the board's `wifi_modules`.
    #[serde(default)]
    pub wifi: Vec<String>,
    /// Loaded in the background once boma runs (they must be carried).
    pub preload: Vec<String>,
}

impl ImageModules {
    /// Read `image/modules.toml` under `root`.
    pub fn load(root: &Path) -> Result<ImageModules> {
        let path = root.join("image/modules.toml");
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        toml::from_str(&text).map_err(|e| Error::Parse {
            path,
            message: e.to_string(),
        })
    }

    /// What a board's initramfs carries by name: its own list, `carry`, `usb` when it has USB,
    /// `preload` (the radio's modules are apart: `wifi`, `Board::wifi_modules`).
    pub fn wanted(&self, board: &Board) -> Vec<String> {
        let mut out = board.modules.clone();
        out.extend(self.carry.iter().cloned());
        if board.usb {
            out.extend(self.usb.iter().cloned());
        }
        out.extend(self.preload.iter().cloned());
        out
    }
}

impl Board {
    /// Read `board/<name>/board.toml` under `root` (the source tree).
    pub fn load(root: &Path, name: &str) -> Result<Board> {
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        let dir = root.join("board").join(name);
        if !valid || !dir.is_dir() {
            return Err(Error::UnknownBoard(name.to_string()));
        }
        let path = dir.join("board.toml");
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let mut board: Board = toml::from_str(&text).map_err(|e| Error::Parse {
            path: path.clone(),
            message: e.to_string(),
        })?;
        if board.name != name {
            return Err(Error::Parse {
                path,
                message: format!("name = {:?} but the folder is {name:?}", board.name),
            });
        }
        if !board.firmware_files.is_empty() && board.firmware.is_none() {
            return Err(Error::Parse {
                path,
                message: "firmware_files without a firmware package".into(),
            });
        }
        if !board.wifi_firmware.is_empty() && !board.wifi {
            return Err(Error::Parse {
                path,
                message: "wifi_firmware without wifi = true".into(),
            });
        }
        board.dir = dir;
        Ok(board)
    }

    /// Every pinned package of the board.
    pub fn pins(&self) -> Vec<&Pin> {
        let mut pins = vec![&self.kernel, &self.busybox, &self.e2fsck, &self.bootloader];
        pins.extend(self.firmware.as_ref());
        pins
    }

    /// A file of the board folder (`config.txt`, `cmdline.txt`).
    pub fn file(&self, name: &str) -> Result<Vec<u8>> {
        let path = self.dir.join(name);
        std::fs::read(&path).map_err(|e| Error::io(&path, e))
    }

    /// Every board folder name under `root/board/`, sorted.
    pub fn names(root: &Path) -> Result<Vec<String>> {
        let dir = root.join("board");
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))? {
            let entry = entry.map_err(|e| Error::io(&dir, e))?;
            if entry.path().join("board.toml").is_file() {
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        names.sort();
        Ok(names)
    }
}
