//! The image builder end to end on real Debian packages: the qemu-virt image built twice is the
//! same bytes (.img, .img.xz, .sha256); its layout is what the firmware and init expect (MBR with
//! FAT32 at 4 MiB and ext4 after it, labels, the operator's files on the boot partition); the
//! ext4 partition passes `e2fsck -fn`; each Pi board carries the drivers its device trees call
//! for without naming them; and a tampered package is refused by the lock.

mod support;

use std::path::Path;

use boma_image::build::{BOOT_SIZE, BOOT_START, DATA_SIZE, DATA_START, Report, data_uuid};
use boma_image::{fat, mbr};

#[test]
fn qemu_virt_image_is_reproducible_and_well_formed() {
    let a = support::test_dir("repro-a");
    let b = support::test_dir("repro-b");
    let ra = support::build_image("qemu-virt", &a, true);
    let rb = support::build_image("qemu-virt", &b, true);
    two_builds_are_the_same_bytes(&ra, &rb, &a, &b);

    // Layout.
    let img = std::fs::read(&ra.image).expect("image");
    partitions_and_boot_label_are_where_the_firmware_looks(&img);
    let cmdline = boot_partition_holds_the_operators_files_and_slot_a(&ra.image);
    boot_scr_is_what_mkimage_makes_of_boot_cmd(&ra.image, &a);
    ab_state_starts_with_slot_a_committed(&ra.image, &a, &cmdline);
    data_partition_is_labelled_and_clean(&img, &ra.image, &a);
}

/// The two builds (in `a` and `b`) wrote the same .img, .img.xz and .sha256, the sums name both
/// files, and the compressed image is within its budget; its sizes are a figure.
fn two_builds_are_the_same_bytes(ra: &Report, rb: &Report, a: &Path, b: &Path) {
    support::figure(&format!(
        "qemu-virt image: {} bytes ({:.0} MiB), xz {} bytes ({:.1} MiB), initramfs {:.1} MiB, kernel {:.1} MiB, built in {:.1} s",
        ra.image_size,
        ra.image_size as f64 / 1048576.0,
        ra.xz_size,
        ra.xz_size as f64 / 1048576.0,
        ra.initrd_size as f64 / 1048576.0,
        ra.kernel_size as f64 / 1048576.0,
        ra.seconds
    ));
    for name in [
        "boma-qemu-virt.img",
        "boma-qemu-virt.img.xz",
        "boma-qemu-virt.sha256",
    ] {
        let x = std::fs::read(a.join(name)).expect("first build output");
        let y = std::fs::read(b.join(name)).expect("second build output");
        assert!(
            x == y,
            "{name} differs between two builds of the same inputs"
        );
    }
    assert_eq!(ra.sha256, rb.sha256);
    let sums = std::fs::read_to_string(&ra.sums).expect("sums");
    assert!(sums.starts_with(&format!("{}  boma-qemu-virt.img\n", ra.sha256)));
    assert!(sums.contains("  boma-qemu-virt.img.xz\n"));
    assert!(
        ra.xz_size < 48 * 1024 * 1024,
        "over the 48 MiB compressed budget: {}",
        ra.xz_size
    );
}

/// The MBR holds an active FAT32 (LBA) boot partition and a Linux data partition at their fixed
/// places; the boot partition is FAT32 labelled BOMA-BOOT.
fn partitions_and_boot_label_are_where_the_firmware_looks(img: &[u8]) {
    let parts = mbr::decode(&img[..512]).expect("MBR");
    assert_eq!(parts.len(), 2);
    assert_eq!((parts[0].kind, parts[0].active), (0x0C, true));
    assert_eq!(parts[0].bytes(), (BOOT_START, BOOT_SIZE));
    assert_eq!(parts[1].kind, 0x83);
    assert_eq!(parts[1].bytes(), (DATA_START, DATA_SIZE));
    let boot = &img[BOOT_START as usize..];
    assert_eq!(&boot[82..90], b"FAT32   ", "boot partition is FAT32");
    assert_eq!(&boot[71..82], b"BOMA-BOOT  ");
}

/// The boot partition holds the board's cmdline.txt, a commented boma.toml, slot a's gzip
/// initramfs and gzipped arm64 kernel, and an empty slot b. Its cmdline.txt.
fn boot_partition_holds_the_operators_files_and_slot_a(image: &Path) -> Vec<u8> {
    let cmdline = fat::read_file(image, "cmdline.txt").expect("cmdline.txt");
    assert_eq!(
        cmdline,
        std::fs::read(support::root().join("board/qemu-virt/cmdline.txt")).unwrap()
    );
    let toml = String::from_utf8(fat::read_file(image, "boma.toml").expect("boma.toml")).unwrap();
    assert!(
        toml.contains("routes.toml") && toml.starts_with('#'),
        "commented boma.toml"
    );
    let initrd = fat::read_file(image, "a/initrd.img").expect("a/initrd.img");
    assert_eq!(&initrd[..2], &[0x1f, 0x8b], "initramfs is gzip");
    // The kernel is Debian's arm64 Image, gzipped for U-Boot's booti.
    let gz = fat::read_file(image, "a/vmlinuz").expect("a/vmlinuz");
    let mut kernel = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut kernel)
        .expect("a/vmlinuz is gzip");
    assert_eq!(&kernel[0x38..0x3c], b"ARM\x64", "arm64 Image magic");
    assert!(
        fat::read_file(image, "b/vmlinuz").is_err(),
        "slot b starts empty"
    );
    cmdline
}

/// The boot script is what U-Boot's own mkimage makes of image/boot.cmd (made in `a`).
fn boot_scr_is_what_mkimage_makes_of_boot_cmd(image: &Path, a: &Path) {
    let scr = fat::read_file(image, "boot.scr").expect("boot.scr");
    let made = a.join("mkimage.scr");
    let out = std::process::Command::new("mkimage")
        .args([
            "-A", "arm64", "-O", "linux", "-T", "script", "-C", "none", "-n",
        ])
        .arg("boma A/B boot")
        .arg("-d")
        .arg(support::root().join("image/boot.cmd"))
        .arg(&made)
        .env(
            "SOURCE_DATE_EPOCH",
            std::env::var("SOURCE_DATE_EPOCH")
                .unwrap_or_else(|_| boma_image::build::DEFAULT_EPOCH.to_string()),
        )
        .output()
        .expect("mkimage (u-boot-tools; scripts/deps.sh installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        scr,
        std::fs::read(&made).unwrap(),
        "boot.scr differs from mkimage's"
    );
}

/// The first A/B state: slot a committed in both copies, as fw_printenv reads them, and
/// cmdline.env holds cmdline.txt for U-Boot.
fn ab_state_starts_with_slot_a_committed(image: &Path, a: &Path, cmdline: &[u8]) {
    for f in ["abstate.env", "abstate.bak"] {
        let state = fat::read_file(image, f).expect(f);
        let copy = a.join(f);
        std::fs::write(&copy, &state).unwrap();
        let cfg = a.join("fw_env.config");
        std::fs::write(&cfg, format!("{} 0x0 0x1000\n", copy.display())).unwrap();
        let out = std::process::Command::new("fw_printenv")
            .arg("-c")
            .arg(&cfg)
            .output()
            .expect("fw_printenv (libubootenv-tool)");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "boma_slot=a\n", "{f}");
    }
    let env = fat::read_file(image, "cmdline.env").expect("cmdline.env");
    assert_eq!(
        String::from_utf8(env).unwrap(),
        format!("boma_args={}\n", String::from_utf8_lossy(cmdline).trim())
    );
}

/// The ext4 data partition: superblock magic, label, `e2fsck -fn` clean, the board's fixed
/// UUID.
fn data_partition_is_labelled_and_clean(img: &[u8], image: &Path, a: &Path) {
    let data = &img[DATA_START as usize..];
    assert_eq!(
        &data[1024 + 0x38..1024 + 0x3a],
        &[0x53, 0xEF],
        "ext superblock magic"
    );
    assert_eq!(&data[1024 + 0x78..1024 + 0x78 + 9], b"boma-data");
    let part = support::fsck_data_partition(image, a);
    let dump = std::process::Command::new("dumpe2fs")
        .arg("-h")
        .arg(&part)
        .output()
        .expect("dumpe2fs");
    let dump = String::from_utf8_lossy(&dump.stdout);
    assert!(dump.contains(&data_uuid("qemu-virt")), "fixed UUID");
}

/// Each Pi board carries the drivers its device trees call for, found from the DTBs, not listed
/// in its board file: the SD controllers (and on the Pi 4 the two regulators emmc2 waits for),
/// dwc2 with its PHY, GENET with its MDIO bus; and the USB Ethernet set of image/modules.toml.
#[test]
fn pi_boards_carry_the_drivers_their_device_trees_call_for() {
    let expected: [(&str, &[&str]); 3] = [
        (
            "rpi3",
            &[
                "bcm2835",
                "sdhci_iproc",
                "dwc2",
                "phy_generic",
                "bcm2835_rng",
            ],
        ),
        (
            "rpi-zero-2w",
            &["bcm2835", "sdhci_iproc", "dwc2", "phy_generic"],
        ),
        (
            "rpi4",
            &[
                "sdhci_iproc",
                "fixed",
                "gpio_regulator",
                "genet",
                "mdio_bcm_unimac",
                "reset_raspberrypi",
                "iproc_rng200",
            ],
        ),
    ];
    for (name, drivers) in expected {
        let board = boma_image::board::Board::load(&support::root(), name).expect("board");
        let carried = support::carried(name);
        for d in drivers
            .iter()
            .chain(&["cdc_ether", "r8152", "ext4", "crc32c_generic", "nft_masq"])
            // The radio's driver with the wireless core and rfkill (its dependencies).
            .chain(&["brcmfmac", "brcmutil", "cfg80211", "rfkill"])
        {
            assert!(
                carried.iter().any(|m| m == d),
                "{name} does not carry {d}: {carried:?}"
            );
        }
        for d in drivers.iter() {
            assert!(
                !board.modules.iter().any(|m| m == d),
                "board/{name}/board.toml lists {d}"
            );
        }
        // Nothing from the trees' graphics, sound or camera nodes.
        for d in ["vc4", "snd_bcm2835", "bcm2835_v4l2", "v3d"] {
            assert!(!carried.iter().any(|m| m == d), "{name} carries {d}");
        }
        support::figure(&format!(
            "{name} image carries {} kernel modules",
            carried.len()
        ));
    }
}

#[test]
fn unlocked_or_tampered_packages_are_refused() {
    use boma_image::board::Pin;
    use boma_image::lock::Lock;
    let dir = support::test_dir("lock");
    let lock_path = dir.join("packages.lock");
    let pin = Pin {
        package: "busybox-static".into(),
        version: "1:1.35.0-4+deb12u1+b1".into(),
        arch: "arm64".into(),
    };
    // A cache holding a file that is not the real package.
    let cache = dir.join("cache");
    let slot = cache.join("busybox-static_1_1.35.0-4+deb12u1+b1_arm64");
    std::fs::create_dir_all(&slot).unwrap();
    std::fs::write(slot.join("busybox.deb"), b"not the package").unwrap();
    let mut lock = Lock::load(&lock_path).unwrap();
    let err = boma_image::fetch::fetch(&pin, &cache, &mut lock, false).unwrap_err();
    assert!(matches!(err, boma_image::Error::NotLocked { .. }), "{err}");
    lock.set(&pin, &"0".repeat(64));
    let err = boma_image::fetch::fetch(&pin, &cache, &mut lock, false).unwrap_err();
    assert!(matches!(err, boma_image::Error::Checksum { .. }), "{err}");
    // A cached file cut short (a download interrupted by an older boma-image) is fetched again
    // and then matches the real lock.
    let real = Lock::load(&support::root().join("image/packages.lock")).unwrap();
    lock.set(&pin, real.get(&pin).expect("busybox-static is locked"));
    for stale in std::fs::read_dir(&slot).unwrap() {
        std::fs::write(stale.unwrap().path(), b"cut sh").unwrap();
    }
    let deb = boma_image::fetch::fetch(&pin, &cache, &mut lock, false).expect("fetched again");
    assert_eq!(
        boma_image::fetch::sha256_hex(&std::fs::read(&deb).unwrap()),
        real.get(&pin).unwrap()
    );
    // Builds fetching into one empty cache at once (as these tests do) each get the whole file.
    let shared = dir.join("shared-cache");
    let fetchers: Vec<_> = (0..3)
        .map(|_| {
            let (pin, shared) = (pin.clone(), shared.clone());
            let mut lock = Lock::load(&support::root().join("image/packages.lock")).unwrap();
            std::thread::spawn(move || boma_image::fetch::fetch(&pin, &shared, &mut lock, false))
        })
        .collect();
    for fetcher in fetchers {
        fetcher.join().unwrap().expect("a concurrent fetch");
    }
    // The real lock pins every package of every board.
    for name in boma_image::board::Board::names(&support::root()).unwrap() {
        let board = boma_image::board::Board::load(&support::root(), &name).unwrap();
        for pin in board.pins() {
            assert!(
                real.get(pin).is_some(),
                "{name}: {} {} not locked",
                pin.package,
                pin.version
            );
        }
    }
}
