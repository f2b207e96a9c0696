//! The disk image: its layout, the identifiers derived from the board name, the ext4 data
//! partition (and its gzipped copy on the boot partition), the FAT boot partition and the MBR,
//! written sparsely into one file.
//!
//! Layout (512 MiB, a power of two as QEMU's raspi machines want for SD cards):
//! MBR | 4 MiB gap | FAT32 `BOMA-BOOT`, 256 MiB | ext4 `boma-data`, 252 MiB.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::PathBuf;

use super::options::Options;
use crate::board::Board;
use crate::error::{Error, Result};
use crate::fetch::sha256_hex;
use crate::mbr::{self, Partition, SECTOR};
use crate::{ext4, fat};

const MIB: u64 = 1024 * 1024;
/// Whole image.
pub const IMAGE_SIZE: u64 = 512 * MIB;
/// The boot partition starts at 4 MiB (gokrazy, Raspberry Pi OS: aligned for SD erase blocks).
pub const BOOT_START: u64 = 4 * MIB;
pub const BOOT_SIZE: u64 = 256 * MIB;
pub const DATA_START: u64 = BOOT_START + BOOT_SIZE;
pub const DATA_SIZE: u64 = IMAGE_SIZE - DATA_START;

/// 32 bytes for `what`, derived from the board name.
fn derived(board: &str, what: &str) -> [u8; 32] {
    let hex = sha256_hex(format!("boma-image/{board}/{what}").as_bytes());
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap_or(0);
    }
    out
}

/// A UUID (version 4 layout, fixed bits) derived from the board name.
pub fn data_uuid(board: &str) -> String {
    let mut b = derived(board, "data-uuid");
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b[..16].iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The disk image: MBR, the FAT boot partition with `files` and a gzipped copy of the empty
/// data partition, the empty ext4 data partition; written to a temporary file and renamed into
/// place.
pub(super) fn write_image(
    opts: &Options,
    board: &Board,
    stem: &str,
    mut files: Vec<(String, Vec<u8>)>,
    time: u64,
) -> Result<PathBuf> {
    let ids = derived(&board.name, "ids");
    let disk_signature = u32::from_le_bytes([ids[0], ids[1], ids[2], ids[3]]);
    let volume_id = u32::from_le_bytes([ids[4], ids[5], ids[6], ids[7]]);
    std::fs::create_dir_all(&opts.out).map_err(|e| Error::io(&opts.out, e))?;
    let data_tmp = opts.out.join(format!(".{stem}.data.tmp"));
    let data = ext4::build(
        &data_tmp,
        DATA_SIZE,
        &data_uuid(&board.name),
        time,
        &opts.root.join("image/mke2fs.conf"),
    )?;
    let _ = std::fs::remove_file(&data_tmp);
    // The empty data partition, gzipped, on the boot partition: init writes it back over a data
    // partition that e2fsck cannot repair.
    files.push((ext4::PRISTINE.into(), ext4::gzip(&data)?));
    let boot = fat::build(BOOT_SIZE, volume_id, &files)?;

    let sectors =
        |bytes: u64| u32::try_from(bytes / SECTOR).map_err(|_| Error::Layout("too big".into()));
    let table = mbr::encode(
        disk_signature,
        &[
            Partition {
                kind: 0x0C,
                active: true,
                start_lba: sectors(BOOT_START)?,
                sectors: sectors(BOOT_SIZE)?,
            },
            Partition {
                kind: 0x83,
                active: false,
                start_lba: sectors(DATA_START)?,
                sectors: sectors(DATA_SIZE)?,
            },
        ],
    )?;

    let image = opts.out.join(format!("{stem}.img"));
    let tmp = opts.out.join(format!(".{stem}.img.tmp"));
    {
        let mut f = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        f.set_len(IMAGE_SIZE).map_err(|e| Error::io(&tmp, e))?;
        write_sparse(&mut f, 0, &table).map_err(|e| Error::io(&tmp, e))?;
        write_sparse(&mut f, BOOT_START, &boot).map_err(|e| Error::io(&tmp, e))?;
        write_sparse(&mut f, DATA_START, &data).map_err(|e| Error::io(&tmp, e))?;
        f.sync_all().map_err(|e| Error::io(&tmp, e))?;
    }
    std::fs::rename(&tmp, &image).map_err(|e| Error::io(&image, e))?;
    Ok(image)
}

/// Write `bytes` at `offset`, skipping all-zero 64 KiB blocks (the file is already zero there).
fn write_sparse(f: &mut File, offset: u64, bytes: &[u8]) -> std::io::Result<()> {
    const BLOCK: usize = 64 * 1024;
    for (i, chunk) in bytes.chunks(BLOCK).enumerate() {
        if chunk.iter().any(|&b| b != 0) {
            f.seek(SeekFrom::Start(offset + (i * BLOCK) as u64))?;
            f.write_all(chunk)?;
        }
    }
    Ok(())
}
