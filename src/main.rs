//! The `boma` command line: `run` (the default), `check` and `version`. Only argument handling,
//! logging set-up and signal handling live here; everything else is in the library.
//!
//! The library forbids unsafe code; the binary denies it, with one audited exception: giving
//! freed heap back to the system after a configuration change ([`release_freed_heap`]).
#![deny(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;

const USAGE: &str = "\
usage: boma [run] [--config FILE]   run the gateway (default: the embedded config)
       boma check FILE              validate a configuration file, print every problem
       boma version                 print the version (and the image's, board and slot)
       boma update FILE [--force] [--no-reboot] [--config FILE]
                                    install an update bundle into the other slot and reboot
                                    into it (--force: even an older version)

The configuration file can also be given with BOMA_CONFIG.";

const DOCKER_SOCKET: &str = "/var/run/docker.sock";
const DEFAULT_DOCKER: &str = "
[providers.docker]
endpoint = \"unix:///var/run/docker.sock\"
defaultRule = \"Host(`{{ normalize .Name }}.village.lan`)\"
";

enum Command {
    Run(Option<PathBuf>),
    Check(PathBuf),
    Update {
        file: PathBuf,
        force: bool,
        reboot: bool,
        config: Option<PathBuf>,
    },
    Version,
    Help,
}

fn parse_args(args: &[String]) -> Result<Command, String> {
    let mut it = args.iter().map(String::as_str).peekable();
    let cmd = match it.peek() {
        Some(&"run") => {
            it.next();
            "run"
        }
        Some(&"check") => {
            it.next();
            let file = it.next().ok_or("check needs a FILE")?;
            if let Some(extra) = it.next() {
                return Err(format!("unexpected argument `{extra}`"));
            }
            return Ok(Command::Check(PathBuf::from(file)));
        }
        Some(&"update") => {
            it.next();
            let (mut file, mut force, mut reboot, mut config) = (None, false, true, None);
            while let Some(arg) = it.next() {
                match arg {
                    "--force" => force = true,
                    "--no-reboot" => reboot = false,
                    "--config" | "-c" => {
                        config = Some(PathBuf::from(it.next().ok_or("--config needs a FILE")?));
                    }
                    a if a.starts_with('-') => return Err(format!("unexpected argument `{a}`")),
                    a if file.is_none() => file = Some(PathBuf::from(a)),
                    a => return Err(format!("unexpected argument `{a}`")),
                }
            }
            let file = file.ok_or("update needs a FILE")?;
            return Ok(Command::Update {
                file,
                force,
                reboot,
                config,
            });
        }
        Some(&"version") | Some(&"--version") | Some(&"-V") => return Ok(Command::Version),
        Some(&"help") | Some(&"--help") | Some(&"-h") => return Ok(Command::Help),
        _ => "run",
    };
    debug_assert_eq!(cmd, "run");
    let mut config = std::env::var_os("BOMA_CONFIG").map(PathBuf::from);
    while let Some(arg) = it.next() {
        match arg {
            "--config" | "-c" => {
                config = Some(PathBuf::from(it.next().ok_or("--config needs a FILE")?));
            }
            other => match other.strip_prefix("--config=") {
                Some(v) => config = Some(PathBuf::from(v)),
                None => return Err(format!("unexpected argument `{other}`")),
            },
        }
    }
    Ok(Command::Run(config))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cmd = match parse_args(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("boma: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match cmd {
        Command::Help => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Command::Version => {
            let updater = boma::update::Updater::new(None);
            match updater.system() {
                Ok(sys) => println!(
                    "{} (boma {}, board {}, slot {})",
                    sys.version,
                    env!("CARGO_PKG_VERSION"),
                    sys.board,
                    sys.slot.name()
                ),
                Err(_) => println!("boma {}", env!("CARGO_PKG_VERSION")),
            }
            ExitCode::SUCCESS
        }
        Command::Update {
            file,
            force,
            reboot,
            config,
        } => update(&file, force, reboot, config.as_deref()),
        Command::Check(path) => match boma::config::load(&path) {
            Ok(cfg) => {
                for w in cfg.warnings() {
                    eprintln!("{}: warning: {w}", path.display());
                }
                println!("{}: ok", path.display());
                ExitCode::SUCCESS
            }
            Err(errors) => {
                eprint!("{errors}");
                if !errors.to_string().ends_with('\n') {
                    eprintln!();
                }
                ExitCode::from(1)
            }
        },
        Command::Run(path) => match run(path) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("boma: {e:#}");
                ExitCode::from(1)
            }
        },
    }
}

/// `boma update FILE`: what `POST /api/update` does, from a file on the box.
fn update(
    file: &std::path::Path,
    force: bool,
    reboot: bool,
    config: Option<&std::path::Path>,
) -> ExitCode {
    let cfg = match config.map(boma::config::load).transpose() {
        Ok(c) => c,
        Err(errors) => {
            eprint!("{errors}");
            return ExitCode::from(2);
        }
    };
    let updater = boma::update::Updater::new(cfg.as_ref().and_then(|c| c.update.as_ref()));
    let bundle = match std::fs::File::open(file) {
        Ok(f) => std::io::BufReader::new(f),
        Err(e) => {
            eprintln!("boma: {}: {e}", file.display());
            return ExitCode::from(1);
        }
    };
    match updater.install(bundle, force) {
        Ok(done) => {
            println!(
                "boma: version {} installed into slot {}, on trial at the next boot",
                done.version,
                done.slot.name()
            );
            if reboot && updater.config().reboot {
                println!("boma: rebooting");
                updater.reboot_later(std::time::Duration::ZERO);
                std::thread::sleep(std::time::Duration::from_secs(30));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("boma: {}: {e}", file.display());
            ExitCode::from(1)
        }
    }
}

fn run(path: Option<PathBuf>) -> anyhow::Result<()> {
    let cfg = match &path {
        Some(p) => boma::config::load(p).map_err(|e| anyhow::anyhow!("{e}"))?,
        None => {
            // The embedded default watches the local Docker engine when its socket is there:
            // containers then answer as <name>.village.lan (DNS and proxy).
            let mut text = boma::config::DEFAULT_TOML.to_string();
            if std::path::Path::new(DOCKER_SOCKET).exists() {
                text.push_str(DEFAULT_DOCKER);
            }
            boma::config::parse(&text, std::path::Path::new("<embedded default>"))
                .map_err(|e| anyhow::anyhow!("{e}"))?
        }
    };
    init_logging(&cfg);
    raise_open_files_limit();
    // The control runtime (providers, assembler, health checks); connections are served by the
    // gateway's own worker threads.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name("boma")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let gateway = boma::Gateway::start(&cfg).await?;
        let origin = path
            .as_ref()
            .map_or("embedded default config".to_string(), |p| {
                p.display().to_string()
            });
        println!(
            "boma {} running ({origin}, {} workers)",
            env!("CARGO_PKG_VERSION"),
            gateway.workers
        );
        for l in &gateway.listening {
            let path = if l.what == "admin" { "/dashboard/" } else { "" };
            println!(
                "  {:<6} {:<10} {}://{}{path}",
                l.what, l.name, l.scheme, l.addr
            );
        }
        println!("ready");
        tokio::spawn(trim_after_changes(gateway.store.subscribe()));
        // A freshly updated slot on trial commits itself once DNS and HTTP have answered for
        // `[update] commit_after`.
        let probes = (gateway.listening.iter())
            .filter_map(|l| match l.what {
                "dns" => Some(boma::update::commit::Probe::Dns(l.addr)),
                "proxy" => Some(boma::update::commit::Probe::Http(l.addr)),
                _ => None,
            })
            .collect();
        tokio::spawn(boma::update::commit::run(
            std::sync::Arc::clone(&gateway.update),
            probes,
        ));
        wait_for_signal().await;
        tracing::info!("shutting down: draining connections");
        gateway.shutdown().await;
        anyhow::Ok(())
    })
}

/// After each new configuration (once the old one is dropped by the workers), gives the freed
/// heap back to the system. Parsing a file of a thousand routers peaks at several MiB that
/// glibc's allocator would otherwise keep resident, interleaved with what stays allocated.
async fn trim_after_changes(
    mut snapshots: tokio::sync::watch::Receiver<Arc<boma::dynamic::Snapshot>>,
) {
    loop {
        // Coalesce a burst of changes; the workers drop the old snapshot on their next request.
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        release_freed_heap();
        if snapshots.changed().await.is_err() {
            return;
        }
    }
}

/// `malloc_trim(0)` on glibc: every arena's free pages are returned (`madvise`), not only the
/// top of the main heap. Other C libraries (musl, in the image) return freed memory by themselves.
#[allow(unsafe_code)]
fn release_freed_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointers and is thread-safe (it locks each arena); it only
    // releases pages that hold no allocation.
    unsafe {
        libc::malloc_trim(0);
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

fn init_logging(cfg: &boma::config::Config) {
    // Without [log], Traefik logs at ERROR; boma says a little more by default (start-up,
    // reloads, problems), which is what an operator reading the serial console wants.
    let (level, json, file) = match &cfg.log {
        Some(l) => (
            l.level.as_filter(),
            l.format == boma::config::LogFormat::Json,
            l.file_path.clone(),
        ),
        None => ("info", false, None),
    };
    // `BOMA_LOG` overrides the configured level with `target=level` directives, e.g.
    // `boma=debug,hyper=info,warn` (exact targets and their children; no regexps).
    let default = format!("boma={level},warn");
    let filter: tracing_subscriber::filter::Targets = match std::env::var("BOMA_LOG") {
        Ok(spec) => spec.parse().unwrap_or_else(|e| {
            eprintln!("boma: BOMA_LOG `{spec}`: {e}; using `{default}`");
            default.parse().unwrap_or_default()
        }),
        Err(_) => default.parse().unwrap_or_default(),
    };
    let writer = match file.as_ref().map(|p| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .map_err(|e| (p, e))
    }) {
        Some(Ok(f)) => {
            tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::sync::Mutex::new(f))
        }
        Some(Err((p, e))) => {
            eprintln!(
                "boma: cannot open log file {}: {e}; logging to stderr",
                p.display()
            );
            tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::io::stderr)
        }
        None => tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::io::stderr),
    };
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        // Colour only for a person at a terminal: never into a file, a pipe or the journal.
        .with_ansi(
            file.is_none()
                && std::io::IsTerminal::is_terminal(&std::io::stderr())
                && cfg.log.as_ref().is_none_or(|l| !l.no_color),
        )
        .with_target(false);
    let registry = tracing_subscriber::registry().with(filter);
    if json {
        registry.with(layer.json()).init();
    } else {
        registry.with(layer.compact()).init();
    }
}

/// Every connection and socket is a file: raise the soft open-files limit to the hard one (as Go
/// programs, Traefik included, do), so `max_connections` is not cut short by the 1024 a service
/// manager or init usually leaves as the soft limit.
fn raise_open_files_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current.is_some() && limit.current != limit.maximum {
        let raised = Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => {
                tracing::debug!(from = ?limit.current, to = ?limit.maximum, "open-files limit raised")
            }
            Err(e) => tracing::warn!(error = %e, "cannot raise the open-files limit"),
        }
    }
}
