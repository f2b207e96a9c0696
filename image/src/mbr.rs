//! The MBR partition table (what the Raspberry Pi boot ROM reads): a fixed disk signature, the
//! FAT32-LBA boot partition (type 0x0C, marked active) and a Linux data partition (0x83), in LBA
//! only (the CHS fields hold the "beyond CHS" marker).

use crate::error::{Error, Result};

/// Sector size of every offset here.
pub const SECTOR: u64 = 512;

/// One primary partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    pub kind: u8,
    pub active: bool,
    pub start_lba: u32,
    pub sectors: u32,
}

impl Partition {
    /// Byte offset and length.
    pub fn bytes(&self) -> (u64, u64) {
        (
            u64::from(self.start_lba) * SECTOR,
            u64::from(self.sectors) * SECTOR,
        )
    }
}

/// The 512-byte MBR for up to four partitions.
pub fn encode(disk_signature: u32, parts: &[Partition]) -> Result<[u8; 512]> {
    if parts.len() > 4 {
        return Err(Error::Layout("more than 4 primary partitions".into()));
    }
    let mut mbr = [0u8; 512];
    mbr[440..444].copy_from_slice(&disk_signature.to_le_bytes());
    for (i, p) in parts.iter().enumerate() {
        let e = &mut mbr[446 + 16 * i..446 + 16 * (i + 1)];
        e[0] = if p.active { 0x80 } else { 0 };
        e[1..4].copy_from_slice(&[0xFE, 0xFF, 0xFF]);
        e[4] = p.kind;
        e[5..8].copy_from_slice(&[0xFE, 0xFF, 0xFF]);
        e[8..12].copy_from_slice(&p.start_lba.to_le_bytes());
        e[12..16].copy_from_slice(&p.sectors.to_le_bytes());
    }
    mbr[510] = 0x55;
    mbr[511] = 0xAA;
    Ok(mbr)
}

/// The partitions of an MBR (empty entries skipped).
pub fn decode(mbr: &[u8]) -> Result<Vec<Partition>> {
    if mbr.len() < 512 || mbr[510..512] != [0x55, 0xAA] {
        return Err(Error::Layout("no MBR signature".into()));
    }
    let mut parts = Vec::new();
    for i in 0..4 {
        let e = &mbr[446 + 16 * i..446 + 16 * (i + 1)];
        let word = |at: usize| u32::from_le_bytes([e[at], e[at + 1], e[at + 2], e[at + 3]]);
        if e[4] != 0 {
            parts.push(Partition {
                kind: e[4],
                active: e[0] == 0x80,
                start_lba: word(8),
                sectors: word(12),
            });
        }
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let parts = [
            Partition {
                kind: 0x0C,
                active: true,
                start_lba: 8192,
                sectors: 524288,
            },
            Partition {
                kind: 0x83,
                active: false,
                start_lba: 532480,
                sectors: 516096,
            },
        ];
        let mbr = encode(0x616d6f62, &parts).unwrap();
        assert_eq!(&mbr[440..444], b"boma");
        assert_eq!(decode(&mbr).unwrap(), parts);
        assert!(decode(&[0u8; 512]).is_err());
        assert!(decode(&[0u8; 10]).is_err());
    }
}
