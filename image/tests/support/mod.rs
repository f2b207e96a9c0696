//! Shared by the image and QEMU tests: where things are, building an image into a test folder
//! (packages come from the shared download cache under target/image-cache), free ports, and the
//! figures file (`target/image-test/figures.txt`) where measurements are written, never asserted.

#![allow(dead_code)]

pub mod netns;

use std::io::Write;
use std::path::{Path, PathBuf};

use boma_image::build::{Options, Report, build};

/// The source tree.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("image/ has a parent")
        .to_path_buf()
}

/// The static aarch64 boma binary; `make test` builds it first (`make aarch64`).
pub fn boma_binary() -> PathBuf {
    let p = root().join("target/aarch64-unknown-linux-musl/release/boma");
    assert!(
        p.is_file(),
        "{} is missing: run `make aarch64` (make test does) before the image tests",
        p.display()
    );
    p
}

/// Folder for one test's outputs, emptied first.
pub fn test_dir(name: &str) -> PathBuf {
    let d = root().join("target/image-test").join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create test dir");
    d
}

/// Build `board` into `out`.
pub fn build_image(board: &str, out: &Path, compress: bool) -> Report {
    let mut opts = Options::new(&root(), board);
    opts.boma = boma_binary();
    opts.out = out.to_path_buf();
    opts.compress = compress;
    match build(&opts) {
        Ok(r) => r,
        Err(e) => panic!("building the {board} image: {e}"),
    }
}

/// The kernel modules `board`'s image carries.
pub fn carried(board: &str) -> Vec<String> {
    let mut opts = Options::new(&root(), board);
    opts.boma = boma_binary();
    opts.out = root().join("target/image-test");
    boma_image::build::carried(&opts).unwrap_or_else(|e| panic!("modules of {board}: {e}"))
}

/// Overwrite `len` bytes of `image` at `offset` with zeros (a destroyed partition).
pub fn zero_range(image: &Path, offset: u64, len: u64) {
    use std::io::{Seek, SeekFrom};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(image)
        .expect("open image");
    f.seek(SeekFrom::Start(offset)).expect("seek");
    let zeros = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = left.min(zeros.len() as u64) as usize;
        f.write_all(&zeros[..n]).expect("zero");
        left -= n as u64;
    }
    f.sync_all().expect("sync");
}

/// A free TCP port on 127.0.0.1 (also free for UDP in practice: tests only).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// Print a measurement and append it to target/image-test/figures.txt.
pub fn figure(line: &str) {
    eprintln!("figure: {line}");
    let path = root().join("target/image-test/figures.txt");
    let _ = std::fs::create_dir_all(path.parent().expect("parent"));
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
    {
        let _ = writeln!(f, "{line}");
    }
}

/// Copy `len` bytes at `offset` of `image` into a new file (for e2fsck on the host).
pub fn extract_range(image: &Path, offset: u64, len: u64, out: &Path) {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(image).expect("open image");
    f.seek(SeekFrom::Start(offset)).expect("seek");
    let mut buf = vec![0u8; usize::try_from(len).expect("fits")];
    f.read_exact(&mut buf).expect("read partition");
    std::fs::write(out, buf).expect("write partition");
}

/// Copy the data partition of `image` to `dir/data.ext4` and assert `e2fsck -fn` finds it clean;
/// returns the copy's path.
pub fn fsck_data_partition(image: &Path, dir: &Path) -> PathBuf {
    let part = dir.join("data.ext4");
    extract_range(
        image,
        boma_image::build::DATA_START,
        boma_image::build::DATA_SIZE,
        &part,
    );
    let out = std::process::Command::new("e2fsck")
        .arg("-fn")
        .arg(&part)
        .output()
        .expect("e2fsck (e2fsprogs; run `make image-deps`)");
    assert!(
        out.status.success(),
        "data partition not clean: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    part
}
