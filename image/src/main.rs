//! `boma-image`: the command behind `make image` and `make qemu`.
//!
//! ```text
//! boma-image build  --board NAME [--boma PATH] [--out DIR] [--cache DIR] [--record-lock]
//!                   [--no-xz] [--firmware DIR] [--version V] [--key FILE]
//! boma-image bundle --board NAME [--boma PATH] [--out DIR] [--cache DIR] [--firmware DIR]
//!                   [--version V] [--key FILE] [--break]
//! boma-image keygen --out FILE
//! boma-image sign   --bundle FILE --key FILE
//! boma-image extract --image IMG --file NAME --out PATH
//! boma-image qemu   --board NAME [--image IMG] [--http-port N] [--dns-port N] [--append ARGS]
//!                   [--lan-tap TAP | --lan-mcast ADDR:PORT]
//! ```
//! Paths default to the source tree this binary was built from. A flag a command does not take,
//! a flag given twice or a flag without its value is an error, never ignored.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use boma_image::build::{Options, build, bundle};
use boma_image::qemu::{self, Boot, Lan, Machine};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

const USAGE: &str = "usage: boma-image build --board NAME [--boma PATH] [--out DIR] [--cache DIR] [--record-lock] [--no-xz] [--firmware DIR] [--version V] [--key FILE]\n       \
     boma-image bundle --board NAME [--boma PATH] [--out DIR] [--cache DIR] [--firmware DIR] [--version V] [--key FILE] [--break]\n       \
     boma-image keygen --out FILE\n       \
     boma-image sign --bundle FILE --key FILE\n       \
     boma-image extract --image IMG --file NAME --out PATH\n       \
     boma-image qemu --board NAME [--image IMG] [--http-port N] [--dns-port N] [--append ARGS] [--lan-tap TAP | --lan-mcast ADDR:PORT]";

/// The flags each command takes: (flag, takes a value).
fn flags(command: &str) -> Option<&'static [(&'static str, bool)]> {
    Some(match command {
        "build" => &[
            ("--board", true),
            ("--boma", true),
            ("--out", true),
            ("--cache", true),
            ("--record-lock", false),
            ("--no-xz", false),
            ("--firmware", true),
            ("--version", true),
            ("--key", true),
        ],
        "bundle" => &[
            ("--board", true),
            ("--boma", true),
            ("--out", true),
            ("--cache", true),
            ("--firmware", true),
            ("--version", true),
            ("--key", true),
            ("--break", false),
        ],
        "keygen" => &[("--out", true)],
        "sign" => &[("--bundle", true), ("--key", true)],
        "extract" => &[("--image", true), ("--file", true), ("--out", true)],
        "qemu" => &[
            ("--board", true),
            ("--image", true),
            ("--http-port", true),
            ("--dns-port", true),
            ("--append", true),
            ("--lan-tap", true),
            ("--lan-mcast", true),
        ],
        _ => return None,
    })
}

/// A command's flags, checked against what it takes.
struct Args {
    command: String,
    values: Vec<(String, Option<String>)>,
}

impl Args {
    fn parse(argv: &[String]) -> Result<Args, String> {
        let command = argv.first().cloned().unwrap_or_default();
        let known = flags(&command).ok_or_else(|| match command.as_str() {
            "" => "no command".to_string(),
            c => format!("unknown command {c:?}"),
        })?;
        let mut values: Vec<(String, Option<String>)> = Vec::new();
        let mut rest = argv.iter().skip(1);
        while let Some(flag) = rest.next() {
            let Some(&(_, takes)) = known.iter().find(|(f, _)| f == flag) else {
                return Err(format!("{command}: unknown flag {flag:?}"));
            };
            if values.iter().any(|(f, _)| f == flag) {
                return Err(format!("{command}: {flag} given twice"));
            }
            let value = if takes {
                Some(
                    rest.next()
                        .cloned()
                        .ok_or_else(|| format!("{command}: {flag} needs a value"))?,
                )
            } else {
                None
            };
            values.push((flag.clone(), value));
        }
        Ok(Args { command, values })
    }
    fn value(&self, flag: &str) -> Option<String> {
        self.values
            .iter()
            .find(|(f, _)| f == flag)
            .and_then(|(_, v)| v.clone())
    }
    fn has(&self, flag: &str) -> bool {
        self.values.iter().any(|(f, _)| f == flag)
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

/// Build options from the flags (`build`, `bundle`).
fn options(args: &Args, root: &Path) -> Result<Options, String> {
    let mut opts = Options::new(root, &args.required("--board")?);
    if let Some(p) = args.value("--boma") {
        opts.boma = PathBuf::from(p);
    }
    if let Some(p) = args.value("--out") {
        opts.out = PathBuf::from(p);
    }
    if let Some(p) = args.value("--cache") {
        opts.cache = PathBuf::from(p);
    }
    if let Some(p) = args.value("--key") {
        opts.key = PathBuf::from(p);
    }
    if let Some(v) = args.value("--version") {
        boma_image::bundle::check_version(&v).map_err(|e| e.to_string())?;
        opts.version = v;
    }
    opts.record_lock = args.has("--record-lock");
    opts.compress = !args.has("--no-xz");
    opts.firmware = args.value("--firmware").map(PathBuf::from);
    opts.broken = args.has("--break");
    Ok(opts)
}

/// Run the command `args` names, one function per command.
fn run(args: &Args) -> Result<(), String> {
    let root = root();
    let target = root.join("target");
    match args.command.as_str() {
        "build" => run_build(&options(args, &root)?),
        "bundle" => run_bundle(&options(args, &root)?),
        "keygen" => run_keygen(args),
        "sign" => run_sign(args),
        "extract" => run_extract(args),
        "qemu" => run_qemu(args, &target),
        _ => Err(USAGE.into()),
    }
}

/// `build`: the image, then what went into it.
fn run_build(opts: &Options) -> Result<(), String> {
    let r = build(opts).map_err(|e| e.to_string())?;
    let mib = |b: u64| b as f64 / 1048576.0;
    let xz = if opts.compress {
        format!("{} ({:.1} MiB xz), ", r.xz.display(), mib(r.xz_size))
    } else {
        String::new()
    };
    let wifi = r.wifi_size.map_or(String::new(), |(gz, raw)| {
        format!(
            "; Wi-Fi archive {:.1} MiB ({:.1} MiB unpacked)",
            mib(gz),
            mib(raw)
        )
    });
    println!(
        "boma-image: {} ({:.0} MiB), {xz}{}\n  kernel {:.1} MiB, initramfs {:.1} MiB (gzip) with {} modules{wifi}; sha256 {}; {:.1} s",
        r.image.display(),
        mib(r.image_size),
        r.sums.display(),
        mib(r.kernel_size),
        mib(r.initrd_size),
        r.modules.len(),
        r.sha256,
        r.seconds
    );
    Ok(())
}

/// `bundle`: the signed update bundle.
fn run_bundle(opts: &Options) -> Result<(), String> {
    let w = bundle(opts).map_err(|e| e.to_string())?;
    println!(
        "boma-image: {} ({:.1} MiB), version {}{}, signed with {}",
        w.path.display(),
        w.size as f64 / 1048576.0,
        w.version,
        if opts.broken {
            " (BREAK: its boma exits at start)"
        } else {
            ""
        },
        opts.key.display()
    );
    Ok(())
}

/// `keygen`: a new signing key pair.
fn run_keygen(args: &Args) -> Result<(), String> {
    let out = PathBuf::from(args.required("--out")?);
    let pair = boma_image::sign::generate(&out).map_err(|e| e.to_string())?;
    println!(
        "boma-image: private key {} (keep it off the gateway), public key {} = {}",
        out.display(),
        out.with_extension("pub").display(),
        boma_image::sign::public_hex(&pair)
    );
    Ok(())
}

/// `sign`: a bundle signed again, in place, with another key.
fn run_sign(args: &Args) -> Result<(), String> {
    let path = PathBuf::from(args.required("--bundle")?);
    let key = boma_image::sign::load(&PathBuf::from(args.required("--key")?))
        .map_err(|e| e.to_string())?;
    let mut bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    boma_image::bundle::resign(&mut bytes, &key).map_err(|e| e.to_string())?;
    std::fs::write(&path, bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    println!(
        "boma-image: {} signed by {}",
        path.display(),
        boma_image::sign::public_hex(&key)
    );
    Ok(())
}

/// `extract`: one file of an image's boot partition, copied out.
fn run_extract(args: &Args) -> Result<(), String> {
    let image = PathBuf::from(args.required("--image")?);
    let file = args.required("--file")?;
    let out = args.required("--out")?;
    let bytes = boma_image::fat::read_file(&image, &file).map_err(|e| e.to_string())?;
    std::fs::write(&out, bytes).map_err(|e| format!("{out}: {e}"))
}

/// `qemu`: boot a board's image with the serial console on the terminal, until QEMU exits.
fn run_qemu(args: &Args, target: &Path) -> Result<(), String> {
    let board = args.required("--board")?;
    let machine = qemu_machine(&board)?;
    if machine != Machine::Virt && (args.has("--lan-tap") || args.has("--lan-mcast")) {
        return Err(format!(
            "a LAN NIC needs the virt machine (BOARD=qemu-virt), not {board}"
        ));
    }
    let image = qemu_image(args, target, &board)?;
    let lan = qemu_lan(args)?;
    let boot = Boot {
        machine,
        image,
        workdir: target.join(format!("qemu/{board}")),
        http_port: args.port("--http-port", "HTTP_PORT", 8080)?,
        dns_port: args.port("--dns-port", "DNS_PORT", 5353)?,
        append: args.value("--append").unwrap_or_default(),
        lan,
        netns: None,
        interactive: true,
        uboot: true,
    };
    let mut c = qemu::command(&boot).map_err(|e| e.to_string())?;
    print_qemu_hints(&boot);
    let status = c
        .status()
        .map_err(|e| format!("qemu-system-aarch64: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("qemu exited with {status}"))
    }
}

/// The QEMU machine a board boots on.
fn qemu_machine(board: &str) -> Result<Machine, String> {
    match board {
        "qemu-virt" => Ok(Machine::Virt),
        "rpi3" => Ok(Machine::Raspi3b),
        other => Err(format!(
            "no QEMU machine for board {other} (qemu-virt, rpi3)"
        )),
    }
}

/// The image to boot: `--image`, or a copy of the board's built image, made again when the
/// build is newer.
fn qemu_image(args: &Args, target: &Path, board: &str) -> Result<PathBuf, String> {
    if let Some(image) = args.value("--image") {
        return Ok(PathBuf::from(image));
    }
    let built = target.join(format!("images/boma-{board}.img"));
    // Boot a copy so the built image keeps matching its .sha256.
    let image = target.join(format!("images/boma-{board}.qemu.img"));
    let stale = match (std::fs::metadata(&built), std::fs::metadata(&image)) {
        (Ok(b), Ok(i)) => b.modified().ok() > i.modified().ok(),
        (Ok(_), Err(_)) => true,
        (Err(e), _) => {
            return Err(format!(
                "{}: {e} (run make image BOARD={board})",
                built.display()
            ));
        }
    };
    if stale {
        std::fs::copy(&built, &image).map_err(|e| format!("{}: {e}", image.display()))?;
    }
    Ok(image)
}

/// The guest's LAN NIC, if one is asked for.
fn qemu_lan(args: &Args) -> Result<Option<Lan>, String> {
    match (args.value("--lan-tap"), args.value("--lan-mcast")) {
        (Some(_), Some(_)) => Err("--lan-tap and --lan-mcast: one LAN only".into()),
        (Some(tap), None) => Ok(Some(Lan::Tap(tap))),
        (None, Some(mcast)) => Ok(Some(Lan::Mcast(mcast))),
        (None, None) => Ok(None),
    }
}

/// What is booting and, on `virt`, how to reach the guest's services from the host.
fn print_qemu_hints(boot: &Boot) {
    eprintln!(
        "boma-image: booting {} on QEMU {:?} (Ctrl-A X quits)",
        boot.image.display(),
        boot.machine
    );
    if boot.machine == Machine::Virt {
        eprintln!(
            "  HTTP: curl -H 'Host: gateway.village.lan' http://127.0.0.1:{}/api/version\n  \
             DNS:  dig @127.0.0.1 -p {} gateway.village.lan   (UDP and TCP; qemu-virt's boma.toml serves village.lan)",
            boot.http_port, boot.dns_port
        );
        if let Some(Lan::Tap(tap)) = &boot.lan {
            eprintln!(
                "  LAN:  eth1 on tap {tap}: bridge it with a client; the gateway is 10.66.0.1 (DHCP, DNS, HTTP, NAT)"
            );
        }
    }
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let args = match Args::parse(&argv) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("boma-image: {e}\n{USAGE}");
            return ExitCode::FAILURE;
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("boma-image: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Args;

    fn parse(args: &[&str]) -> Result<Args, String> {
        Args::parse(&args.iter().map(|a| a.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn flags_are_checked_per_command() {
        let a = parse(&["qemu", "--board", "qemu-virt", "--lan-tap", "tap0"]).expect("valid");
        assert_eq!(a.value("--lan-tap").as_deref(), Some("tap0"));
        assert!(parse(&["build", "--board", "rpi4", "--no-xz"]).is_ok_and(|a| a.has("--no-xz")));
        for (args, error) in [
            (
                &["qemu", "--board", "qemu-virt", "--lan"][..],
                "unknown flag \"--lan\"",
            ),
            (
                &["build", "--board", "rpi4", "--lan-tap", "t"],
                "unknown flag \"--lan-tap\"",
            ),
            (
                &["qemu", "--board", "qemu-virt", "stray"],
                "unknown flag \"stray\"",
            ),
            (&["qemu", "--lan-tap"], "--lan-tap needs a value"),
            (
                &["qemu", "--board", "a", "--board", "b"],
                "--board given twice",
            ),
            (&["flash"], "unknown command"),
            (&[], "no command"),
        ] {
            let got = parse(args).err().unwrap_or_default();
            assert!(got.contains(error), "{args:?}: {got:?}");
        }
    }
}
