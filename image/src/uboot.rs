//! What the image gives Debian's U-Boot: `boot.scr` (image/boot.cmd in a legacy script header,
//! which U-Boot's `source` insists on) and the first A/B state files (U-Boot's environment
//! format: a CRC-32, then `name=value` entries). boma reads and writes the same state files at
//! run time (src/update/env.rs); the format and the protocol are in docs/updates.md.

use crate::error::{Error, Result};

/// The boot script's source, as it goes into `boot.scr`.
pub const SCRIPT: &str = include_str!("../boot.cmd");
/// The size of each state file (`env export -c -s 0x1000` in the script).
pub const STATE_SIZE: usize = 0x1000;
/// The state files, primary then backup.
pub const STATE_FILES: [&str; 2] = ["abstate.env", "abstate.bak"];

/// CRC-32 as zlib and U-Boot compute it.
pub fn crc32(data: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(data);
    h.finalize()
}

/// `script` as a U-Boot legacy image of type "script" (what `mkimage -A arm64 -O linux -T
/// script -C none -n NAME` writes): a 64-byte big-endian header, then a table of one length
/// ended by a zero, then the script.
pub fn script_image(script: &[u8], name: &str, time: u32) -> Result<Vec<u8>> {
    let len =
        u32::try_from(script.len()).map_err(|_| Error::Layout("boot script too big".into()))?;
    let mut payload = Vec::with_capacity(script.len() + 8);
    payload.extend_from_slice(&len.to_be_bytes());
    payload.extend_from_slice(&0u32.to_be_bytes());
    payload.extend_from_slice(script);
    let size =
        u32::try_from(payload.len()).map_err(|_| Error::Layout("boot script too big".into()))?;
    let mut h = vec![0u8; 64];
    h[0..4].copy_from_slice(&0x2705_1956u32.to_be_bytes());
    h[8..12].copy_from_slice(&time.to_be_bytes());
    h[12..16].copy_from_slice(&size.to_be_bytes());
    h[24..28].copy_from_slice(&crc32(&payload).to_be_bytes());
    h[28] = 5; // IH_OS_LINUX
    h[29] = 22; // IH_ARCH_ARM64
    h[30] = 6; // IH_TYPE_SCRIPT
    h[31] = 0; // IH_COMP_NONE
    let n = name.len().min(32);
    h[32..32 + n].copy_from_slice(&name.as_bytes()[..n]);
    let hcrc = crc32(&h);
    h[4..8].copy_from_slice(&hcrc.to_be_bytes());
    h.extend_from_slice(&payload);
    Ok(h)
}

/// An environment block of `size` bytes holding `vars` (zero padded, as `env export` pads).
pub fn env_block(vars: &[(&str, &str)], size: usize) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    for (k, v) in vars {
        if k.is_empty() || k.contains(['=', '\0']) || v.contains('\0') {
            return Err(Error::Layout(format!("bad environment entry {k:?}")));
        }
        body.extend_from_slice(format!("{k}={v}\0").as_bytes());
    }
    body.push(0);
    if body.len() + 4 > size {
        return Err(Error::Layout("environment too big".into()));
    }
    body.resize(size - 4, 0);
    let mut out = crc32(&body).to_le_bytes().to_vec();
    out.extend_from_slice(&body);
    Ok(out)
}

/// The state files of a freshly flashed card: slot a committed, nothing on trial.
pub fn initial_state() -> Result<Vec<(String, Vec<u8>)>> {
    let block = env_block(&[("boma_slot", "a")], STATE_SIZE)?;
    Ok(STATE_FILES
        .iter()
        .map(|f| (f.to_string(), block.clone()))
        .collect())
}

/// The size of the Pi build's environment (`CONFIG_ENV_SIZE`, `uboot.env` on the FAT).
pub const PI_ENV_SIZE: usize = 0x4000;

/// `uboot.env` for the Pi boards: U-Boot replaces its whole default environment with this file
/// when it finds it on `mmc 0:1`, so it holds everything U-Boot needs, the default's load
/// addresses included. What it changes: no autoboot delay, no `preboot` (whose `usb start`
/// costs boot time, on the Pi 4 loads the VL805's firmware, and leaves QEMU's dwc2 unusable for
/// Linux), and `bootcmd` goes straight to `boot.scr` on the partition the file came from.
/// When U-Boot cannot read it (a Pi 4 whose SD card is not `mmc 0`), the default environment's
/// `distro_bootcmd` finds `boot.scr` on its own.
pub fn pi_env() -> Result<Vec<u8>> {
    env_block(
        &[
            (
                "bootcmd",
                "setenv devtype mmc; setenv devnum 0; setenv distro_bootpart 1; \
                 load mmc 0:1 ${scriptaddr} boot.scr && source ${scriptaddr}",
            ),
            ("bootdelay", "0"),
            ("baudrate", "115200"),
            ("arch", "arm"),
            ("cpu", "armv8"),
            ("board", "rpi"),
            ("board_name", "rpi"),
            ("vendor", "raspberrypi"),
            ("soc", "bcm283x"),
            ("stdin", "serial"),
            ("stdout", "serial,vidconsole"),
            ("stderr", "serial,vidconsole"),
            ("fdt_high", "ffffffffffffffff"),
            ("initrd_high", "ffffffffffffffff"),
            ("kernel_addr_r", "0x00080000"),
            ("scriptaddr", "0x02400000"),
            ("pxefile_addr_r", "0x02500000"),
            ("fdt_addr_r", "0x02600000"),
            ("ramdisk_addr_r", "0x02700000"),
        ],
        PI_ENV_SIZE,
    )
}

/// `cmdline.env` (boards without a firmware that fills `/chosen/bootargs`): the command line
/// as the one variable `boma_args`, read by the script with `env import -t`.
pub fn cmdline_env(cmdline: &str) -> Vec<u8> {
    let line = cmdline.split_whitespace().collect::<Vec<_>>().join(" ");
    format!("boma_args={line}\n").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_header_is_what_mkimage_writes() {
        // Fields checked one by one; the test in image/tests compares with mkimage itself.
        let img = script_image(b"echo hi\n", "boma-boot", 7).unwrap();
        assert_eq!(&img[0..4], &[0x27, 0x05, 0x19, 0x56]);
        assert_eq!(u32::from_be_bytes(img[12..16].try_into().unwrap()), 16);
        assert_eq!(&img[28..32], &[5, 22, 6, 0]);
        assert_eq!(&img[32..41], b"boma-boot");
        assert_eq!(&img[64..72], &[0, 0, 0, 8, 0, 0, 0, 0]);
        assert_eq!(&img[72..], b"echo hi\n");
        let mut h = img[..64].to_vec();
        h[4..8].fill(0);
        assert_eq!(u32::from_be_bytes(img[4..8].try_into().unwrap()), crc32(&h));
        assert_eq!(
            u32::from_be_bytes(img[24..28].try_into().unwrap()),
            crc32(&img[64..])
        );
    }

    #[test]
    fn state_block_layout() {
        let b = env_block(&[("boma_slot", "a"), ("x", "1")], 64).unwrap();
        assert_eq!(b.len(), 64);
        assert_eq!(&b[4..20], b"boma_slot=a\0x=1\0");
        assert_eq!(b[20], 0);
        assert_eq!(
            u32::from_le_bytes(b[..4].try_into().unwrap()),
            crc32(&b[4..])
        );
        assert!(env_block(&[("a=b", "1")], 64).is_err());
        assert!(env_block(&[("long", &"v".repeat(100))], 64).is_err());
    }
}
