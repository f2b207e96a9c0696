//! `boma-image`: the command behind `make image` and `make qemu`.
//!
//! ```text
//! boma-image build  --board NAME [--boma PATH] [--out DIR] [--cache DIR] [--record-lock]
//! boma-image extract --image IMG --file NAME --out PATH
//! boma-image qemu   --board NAME [--image IMG] [--http-port N] [--dns-port N]
//! ```
//! Paths default to the source tree this binary was built from.

use std::path::PathBuf;
use std::process::ExitCode;

use boma_image::build::{Options, build};
use boma_image::qemu::{self, Boot, Machine};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

struct Args(Vec<String>);

impl Args {
    fn value(&self, flag: &str) -> Option<String> {
        self.0
            .iter()
            .position(|a| a == flag)
            .and_then(|i| self.0.get(i + 1).cloned())
    }
    fn has(&self, flag: &str) -> bool {
        self.0.iter().any(|a| a == flag)
    }
    fn required(&self, flag: &str) -> Result<String, String> {
        self.value(flag).ok_or_else(|| format!("missing {flag}"))
    }
    fn port(&self, flag: &str, env: &str, default: u16) -> Result<u16, String> {
        let v = self.value(flag).or_else(|| std::env::var(env).ok());
        match v {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| format!("{flag}: not a port: {v}")),
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    let root = root();
    let target = root.join("target");
    match args.0.first().map(String::as_str) {
        Some("build") => {
            let board = args.required("--board")?;
            let opts = Options {
                root: root.clone(),
                board,
                boma: args.value("--boma").map(PathBuf::from).unwrap_or_else(|| {
                    target.join("aarch64-unknown-linux-musl/release/boma")
                }),
                out: args.value("--out").map(PathBuf::from).unwrap_or_else(|| target.join("images")),
                cache: args
                    .value("--cache")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| target.join("image-cache")),
                record_lock: args.has("--record-lock"),
                compress: !args.has("--no-xz"),
            };
            let r = build(&opts).map_err(|e| e.to_string())?;
            let mib = |b: u64| b as f64 / 1048576.0;
            println!(
                "boma-image: {} ({:.0} MiB), {} ({:.1} MiB xz), {}\n  kernel {:.1} MiB, initramfs {:.1} MiB (gzip) with {} modules; sha256 {}; {:.1} s",
                r.image.display(),
                mib(r.image_size),
                r.xz.display(),
                mib(r.xz_size),
                r.sums.display(),
                mib(r.kernel_size),
                mib(r.initrd_size),
                r.modules,
                r.sha256,
                r.seconds
            );
            Ok(())
        }
        Some("extract") => {
            let image = PathBuf::from(args.required("--image")?);
            let file = args.required("--file")?;
            let out = args.required("--out")?;
            let bytes =
                boma_image::fat::read_file(&image, &file).map_err(|e| e.to_string())?;
            std::fs::write(&out, bytes).map_err(|e| format!("{out}: {e}"))
        }
        Some("qemu") => {
            let board = args.required("--board")?;
            let machine = match board.as_str() {
                "qemu-virt" => Machine::Virt,
                "rpi3" => Machine::Raspi3b,
                other => return Err(format!("no QEMU machine for board {other} (qemu-virt, rpi3)")),
            };
            let built = target.join(format!("images/boma-{board}.img"));
            let image = args.value("--image").map(PathBuf::from).unwrap_or_else(|| {
                // Boot a copy so the built image keeps matching its .sha256.
                target.join(format!("images/boma-{board}.qemu.img"))
            });
            if args.value("--image").is_none() {
                let stale = match (std::fs::metadata(&built), std::fs::metadata(&image)) {
                    (Ok(b), Ok(i)) => b.modified().ok() > i.modified().ok(),
                    (Ok(_), Err(_)) => true,
                    (Err(e), _) => return Err(format!("{}: {e} (run make image BOARD={board})", built.display())),
                };
                if stale {
                    std::fs::copy(&built, &image).map_err(|e| format!("{}: {e}", image.display()))?;
                }
            }
            let boot = Boot {
                machine,
                image: image.clone(),
                workdir: target.join(format!("qemu/{board}")),
                http_port: args.port("--http-port", "HTTP_PORT", 8080)?,
                dns_port: args.port("--dns-port", "DNS_PORT", 5353)?,
                append: args.value("--append").unwrap_or_default(),
                lan_mcast: args.value("--lan-mcast"),
                interactive: true,
            };
            let mut c = qemu::command(&boot).map_err(|e| e.to_string())?;
            eprintln!("boma-image: booting {} on QEMU {:?} (Ctrl-A X quits)", image.display(), machine);
            if machine == Machine::Virt {
                eprintln!(
                    "  HTTP: curl -H 'Host: gateway.village.lan' http://127.0.0.1:{}/api/version\n  \
                     DNS:  dig @127.0.0.1 -p {} gateway.village.lan   (UDP and TCP; qemu-virt's boma.toml serves village.lan)",
                    boot.http_port, boot.dns_port
                );
            }
            let status = c.status().map_err(|e| format!("qemu-system-aarch64: {e}"))?;
            if status.success() { Ok(()) } else { Err(format!("qemu exited with {status}")) }
        }
        _ => Err("usage: boma-image build --board NAME [--boma PATH] [--out DIR] [--cache DIR] [--record-lock]\n       \
                  boma-image extract --image IMG --file NAME --out PATH\n       \
                  boma-image qemu --board NAME [--image IMG] [--http-port N] [--dns-port N] [--append ARGS] [--lan-mcast ADDR:PORT]".into()),
    }
}

fn main() -> ExitCode {
    let args = Args(std::env::args().skip(1).collect());
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("boma-image: {e}");
            ExitCode::FAILURE
        }
    }
}
