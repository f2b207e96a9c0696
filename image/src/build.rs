//! `build()`: one board's image from its pinned packages and the boma binary.
//!
//! Layout (512 MiB, a power of two as QEMU's raspi machines want for SD cards):
//! MBR | 4 MiB gap | FAT32 `BOMA-BOOT`, 256 MiB | ext4 `boma-data`, 252 MiB.
//! Outputs `boma-<board>.img`, `.img.xz` (xz -T1, deterministic) and `.sha256` (sha256sum format).
//! Every identifier (disk signature, FAT volume ID, ext4 UUID and hash seed) is derived from the
//! board name and every timestamp is fixed, so the same inputs give the same bytes.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::board::{Board, ImageModules};
use crate::error::{Error, Result};
use crate::fetch::{fetch, sha256_hex};
use crate::kmod::{self, Module};
use crate::lock::Lock;
use crate::mbr::{self, Partition, SECTOR};
use crate::wifi::{self, WifiSet};
use crate::{configtxt, deb, ext4, fat, fdt, initramfs, modalias, uboot};

const MIB: u64 = 1024 * 1024;
/// Whole image.
pub const IMAGE_SIZE: u64 = 512 * MIB;
/// The boot partition starts at 4 MiB (gokrazy, Raspberry Pi OS: aligned for SD erase blocks).
pub const BOOT_START: u64 = 4 * MIB;
pub const BOOT_SIZE: u64 = 256 * MIB;
pub const DATA_START: u64 = BOOT_START + BOOT_SIZE;
pub const DATA_SIZE: u64 = IMAGE_SIZE - DATA_START;
/// Timestamp of everything in the image unless `SOURCE_DATE_EPOCH` says otherwise
/// (2025-01-01T00:00:00Z).
pub const DEFAULT_EPOCH: u64 = 1_735_689_600;

/// What to build.
#[derive(Debug, Clone)]
pub struct Options {
    /// The source tree (holds `board/`, `image/`).
    pub root: PathBuf,
    pub board: String,
    /// The static aarch64 boma binary.
    pub boma: PathBuf,
    /// Where the image files go.
    pub out: PathBuf,
    /// Downloaded packages.
    pub cache: PathBuf,
    /// Record packages missing from the lock instead of refusing them.
    pub record_lock: bool,
    /// Write `.img.xz` (and its sum); tests that only boot the image skip it.
    pub compress: bool,
    /// Extra firmware files for the initramfs's `/lib/firmware/` (the folder's tree as it is):
    /// radio firmware Debian does not ship, such as the Zero 2 W's.
    pub firmware: Option<PathBuf>,
    /// The version stamped into the system (`/etc/boma-release`, `boma version`).
    pub version: String,
    /// The update signing key (PKCS#8 ed25519, made on first use): its public half goes into
    /// the image as `/etc/boma/update.pub`; bundles are signed with it.
    pub key: PathBuf,
    /// A system whose boma exits at start (`make bundle BREAK=1`): for the rollback tests.
    pub broken: bool,
}

impl Options {
    /// Defaults for `board` in the source tree `root`: the binary of `make aarch64`, output
    /// under `target/images`, the development key under `target/keys`.
    pub fn new(root: &Path, board: &str) -> Options {
        let target = root.join("target");
        Options {
            root: root.to_path_buf(),
            board: board.to_string(),
            boma: target.join("aarch64-unknown-linux-musl/release/boma"),
            out: target.join("images"),
            cache: target.join("image-cache"),
            record_lock: false,
            compress: true,
            firmware: None,
            version: DEFAULT_VERSION.to_string(),
            key: target.join("keys").join(crate::sign::KEY_FILE),
            broken: false,
        }
    }
}

/// The version of a build that names none.
pub const DEFAULT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// What was built.
#[derive(Debug, Clone)]
pub struct Report {
    pub image: PathBuf,
    pub xz: PathBuf,
    pub sums: PathBuf,
    pub image_size: u64,
    pub xz_size: u64,
    pub initrd_size: u64,
    pub kernel_size: u64,
    /// Kernel modules the initramfs carries, by name.
    pub modules: Vec<String>,
    /// Kernel modules the Wi-Fi archive carries, by name.
    pub wifi_modules: Vec<String>,
    /// Wi-Fi boards: `boma-wifi.cpio.gz`'s size, and its files' size unpacked.
    pub wifi_size: Option<(u64, u64)>,
    pub sha256: String,
    pub seconds: f64,
}

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

fn epoch() -> u64 {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(DEFAULT_EPOCH)
}

/// The kernel package's parts the image uses.
struct Kernel {
    abi: String,
    vmlinuz: Vec<u8>,
    dtbs: BTreeMap<String, Vec<u8>>,
    modules: BTreeMap<String, Module>,
    builtin: BTreeSet<String>,
    /// `modules.builtin` as the package has it (modprobe reads it).
    builtin_file: Vec<u8>,
}

fn read_kernel(deb_path: &Path, board: &Board) -> Result<Kernel> {
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

fn read_one(deb_path: &Path, package: &str, path: &str) -> Result<Vec<u8>> {
    let mut files = deb::read_files(deb_path, |p| p == path)?;
    files.remove(path).ok_or_else(|| Error::Package {
        package: package.to_string(),
        message: format!("no {path}"),
    })
}

/// What goes into a slot (and a bundle), and the rest of the boot partition's inputs.
struct System {
    board: Board,
    debs: Vec<PathBuf>,
    /// The slot's files by name: `vmlinuz`, `initrd.img`, `boma-wifi.cpio.gz` (Wi-Fi boards).
    slot: Vec<(String, Vec<u8>)>,
    dtbs: BTreeMap<String, Vec<u8>>,
    boma_toml: Vec<u8>,
    kernel_size: u64,
    initrd_size: u64,
    modules: Vec<String>,
    wifi_modules: Vec<String>,
    wifi_size: Option<(u64, u64)>,
    time: u64,
}

/// Fetch the pinned packages and make the slot's contents: kernel, initramfs, Wi-Fi archive.
fn system(opts: &Options) -> Result<System> {
    let board = Board::load(&opts.root, &opts.board)?;
    let wifi_set = board.wifi.then(|| WifiSet::load(&opts.root)).transpose()?;
    let (debs, wifi_debs) = fetch_packages(opts, &board, wifi_set.as_ref())?;
    let time = epoch();
    let time32 =
        u32::try_from(time).map_err(|_| Error::Layout("SOURCE_DATE_EPOCH too big".into()))?;
    let kernel = read_kernel(&debs[0], &board)?;
    let image_modules = ImageModules::load(&opts.root)?;
    let carried = carried_modules(&board, &image_modules, &kernel)?;
    let wifi = match &wifi_set {
        Some(set) => Some(wifi::assemble(
            set,
            &wifi::Inputs {
                debs: &wifi_debs,
                board_firmware: &board.wifi_firmware,
                abi: &kernel.abi,
                modules: &carried.wifi,
            },
            time32,
        )?),
        None => None,
    };
    let firmware = match &opts.firmware {
        Some(dir) => initramfs::read_tree(dir)?,
        None => Vec::new(),
    };
    let initrd = make_initrd(opts, &board, &debs, &kernel, &carried, time32, firmware)?;
    let wifi_size = wifi.as_ref().map(|w| (w.archive.len() as u64, w.unpacked));
    let wifi_modules = carried.wifi.iter().map(|m| m.name.clone()).collect();
    drop(carried);
    let Kernel { vmlinuz, dtbs, .. } = kernel;
    // Gzipped: U-Boot reads a third of the bytes from the SD card and inflates them faster
    // than it reads (boot.cmd sets kernel_comp_addr_r for booti).
    let vmlinuz = initramfs::gzip_bytes("vmlinuz", &vmlinuz)?;
    let (kernel_size, initrd_size) = (vmlinuz.len() as u64, initrd.bytes.len() as u64);
    let mut slot = vec![
        ("vmlinuz".to_string(), vmlinuz),
        ("initrd.img".to_string(), initrd.bytes),
    ];
    if let Some(w) = wifi {
        slot.push((wifi::ARCHIVE.into(), w.archive));
    }
    Ok(System {
        board,
        debs,
        slot,
        dtbs,
        boma_toml: initrd.boma_toml,
        kernel_size,
        initrd_size,
        modules: initrd.modules,
        wifi_modules,
        wifi_size,
        time,
    })
}

/// Build the image of one board: fetch the pinned packages, make the initramfs, the boot
/// partition (U-Boot, its script, slot a, the A/B state) and the data partition, write the disk
/// image, then compress and checksum it.
pub fn build(opts: &Options) -> Result<Report> {
    let started = Instant::now();
    let sys = system(opts)?;
    let files = boot_files(opts, &sys)?;
    let stem = format!("boma-{}", sys.board.name);
    let image = write_image(opts, &sys.board, &stem, files, sys.time)?;
    let sums = checksums(opts, &stem, &image)?;
    Ok(Report {
        image,
        xz: sums.xz,
        sums: sums.path,
        image_size: sums.image_size,
        xz_size: sums.xz_size,
        initrd_size: sys.initrd_size,
        kernel_size: sys.kernel_size,
        modules: sys.modules,
        wifi_modules: sys.wifi_modules,
        wifi_size: sys.wifi_size,
        sha256: sums.sha256,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Build the update bundle of one board (`boma-<board>-<version>.bundle` in `opts.out`): the
/// same slot contents an image of these options boots, signed with `opts.key`.
pub fn bundle(opts: &Options) -> Result<crate::bundle::Written> {
    let sys = system(opts)?;
    let key = crate::sign::load_or_create(&opts.key)?;
    std::fs::create_dir_all(&opts.out).map_err(|e| Error::io(&opts.out, e))?;
    let path = opts
        .out
        .join(format!("boma-{}-{}.bundle", sys.board.name, opts.version));
    crate::bundle::write(
        &path,
        &crate::bundle::Manifest {
            board: sys.board.name.clone(),
            version: opts.version.clone(),
            created: sys.time,
        },
        &sys.slot,
        &key,
    )
}

/// Every package the board pins, and those of its Wi-Fi set, from the cache or the mirror
/// (recording the lock if asked).
fn fetch_packages(
    opts: &Options,
    board: &Board,
    wifi: Option<&WifiSet>,
) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let lock_path = opts.root.join("image/packages.lock");
    let mut lock = Lock::load(&lock_path)?;
    let mut get = |pins: Vec<&crate::board::Pin>| -> Result<Vec<PathBuf>> {
        (pins.into_iter())
            .map(|pin| fetch(pin, &opts.cache.join("debs"), &mut lock, opts.record_lock))
            .collect()
    };
    let debs = get(board.pins())?;
    let wifi_debs = get(wifi
        .map(|w| w.packages.iter().collect())
        .unwrap_or_default())?;
    if opts.record_lock {
        lock.save()?;
    }
    Ok((debs, wifi_debs))
}

/// The gzipped initramfs, with the `boma.toml` it carries (also the boot partition's).
struct Initrd {
    bytes: Vec<u8>,
    boma_toml: Vec<u8>,
    /// Kernel modules it carries.
    modules: Vec<String>,
}

fn make_initrd(
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

/// The kernel modules `opts`'s board would carry, by name, without building the image (for
/// `boma-image modules` and the tests).
pub fn carried(opts: &Options) -> Result<Vec<String>> {
    let board = Board::load(&opts.root, &opts.board)?;
    let (debs, _) = fetch_packages(opts, &board, None)?;
    let kernel = read_kernel(&debs[0], &board)?;
    let image_modules = ImageModules::load(&opts.root)?;
    let carried = carried_modules(&board, &image_modules, &kernel)?;
    let all = carried.initramfs.iter().chain(&carried.wifi);
    Ok(all.map(|m| m.name.clone()).collect())
}

/// The kernel modules an image carries.
struct Carried<'k> {
    /// In the initramfs.
    initramfs: Vec<&'k Module>,
    /// Only the radio needs them (the Wi-Fi archive carries their files; `modules.dep` and
    /// `modules.alias` list them, so that they load once it is unpacked).
    wifi: Vec<&'k Module>,
}

/// The modules the image carries: the drivers the board's device trees call for, the board's
/// own list and the image-wide ones (`image/modules.toml`), with their dependencies; those
/// that only the radio needs apart.
fn carried_modules<'k>(
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

/// The boot partition's files: firmware, U-Boot and its script, device trees, slot a (slot b
/// stays empty until the first update), the A/B state, the operator's files.
fn boot_files(opts: &Options, sys: &System) -> Result<Vec<(String, Vec<u8>)>> {
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

/// The disk image: MBR, the FAT boot partition with `files` and a gzipped copy of the empty
/// data partition, the empty ext4 data partition; written to a temporary file and renamed into
/// place.
fn write_image(
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

/// The `.sha256` file of an image (and of its `.img.xz`, made here when asked).
struct Sums {
    path: PathBuf,
    xz: PathBuf,
    sha256: String,
    image_size: u64,
    /// 0 when not compressed.
    xz_size: u64,
}

fn checksums(opts: &Options, stem: &str, image: &Path) -> Result<Sums> {
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
