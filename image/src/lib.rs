//! boma-image: turns pinned Debian arm64 packages and the static `boma` binary into a bootable
//! SD-card image for one board (`board/<name>/`), and boots such images in QEMU.
//!
//! The image is what a Raspberry Pi's firmware wants (gokrazy's layout): an MBR, a FAT32 boot
//! partition at 4 MiB holding the firmware, kernel, DTBs, initramfs, `config.txt`, `cmdline.txt`
//! and the operator's `boma.toml`, then an ext4 data partition. The root filesystem is the
//! initramfs (busybox, boma, kernel modules, init scripts), in RAM.
//!
//! Building needs no root, no loop device and no mount: every byte is written here (MBR, FAT
//! through the `fatfs` crate, newc cpio, gzip) except the ext4 partition, made by `mke2fs` from
//! e2fsprogs with a fixed UUID, hash seed and time. The same inputs give the same bytes.
//!
//! This crate must not be linked into the gateway: it is a separate workspace member.

#![forbid(unsafe_code)]

pub mod board;
pub mod build;
pub mod bundle;
pub mod configtxt;
pub mod cpio;
pub mod deb;
pub mod elf;
pub mod error;
pub mod ext4;
pub mod fat;
pub mod fdt;
pub mod fetch;
pub mod initramfs;
pub mod kmod;
pub mod lock;
pub mod mbr;
pub mod modalias;
pub mod qemu;
pub mod sign;
pub mod uboot;
pub mod wifi;

pub use error::Error;
