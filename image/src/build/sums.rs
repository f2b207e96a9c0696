//! The files published beside the image: `.img.xz` (xz -T1, deterministic) and `.sha256`
//! (sha256sum format).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::options::Options;
use crate::error::{Error, Result};
use crate::fetch::sha256_hex;

/// The `.sha256` file of an image (and of its `.img.xz`, made here when asked).
pub(super) struct Sums {
    pub(super) path: PathBuf,
    pub(super) xz: PathBuf,
    pub(super) sha256: String,
    pub(super) image_size: u64,
    /// 0 when not compressed.
    pub(super) xz_size: u64,
}

pub(super) fn checksums(opts: &Options, stem: &str, image: &Path) -> Result<Sums> {
    let xz = opts.out.join(format!("{stem}.img.xz"));
    let img_bytes = std::fs::read(image).map_err(|e| Error::io(image, e))?;
    let sha256 = sha256_hex(&img_bytes);
    let mut text = format!("{sha256}  {stem}.img\n");
    let mut xz_size = 0;
    if opts.compress {
        compress_xz(image, &xz)?;
        let xz_bytes = std::fs::read(&xz).map_err(|e| Error::io(&xz, e))?;
        xz_size = xz_bytes.len() as u64;
        text.push_str(&format!("{}  {stem}.img.xz\n", sha256_hex(&xz_bytes)));
    }
    let path = opts.out.join(format!("{stem}.sha256"));
    std::fs::write(&path, text).map_err(|e| Error::io(&path, e))?;
    Ok(Sums {
        path,
        xz,
        sha256,
        image_size: img_bytes.len() as u64,
        xz_size,
    })
}

fn compress_xz(image: &Path, xz: &Path) -> Result<()> {
    let tmp = xz.with_extension("xz.tmp");
    let out = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let status = Command::new("xz")
        .args(["-T1", "-6", "-c", "--"])
        .arg(image)
        .stdout(Stdio::from(out))
        .status()
        .map_err(|e| Error::Command {
            command: "xz".into(),
            message: format!("{e} (install xz-utils: scripts/image-deps.sh)"),
        })?;
    if !status.success() {
        return Err(Error::Command {
            command: format!("xz {}", image.display()),
            message: status.to_string(),
        });
    }
    std::fs::rename(&tmp, xz).map_err(|e| Error::io(xz, e))
}
