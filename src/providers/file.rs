//! The file provider: Traefik's dynamic configuration from one TOML file or a directory of them
//! (recursively, `*.toml`), re-read when a file changes, sent as one fragment for namespace
//! `file`.
//!
//! Change detection polls file metadata once a second instead of using inotify: it works the same
//! on the FAT boot partition an operator edits from a laptop, on network mounts and in
//! containers, and costs a few `stat` calls. A file that stops parsing keeps its last good
//! content in the fragment and adds a problem; it never takes routes away.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, watch};

use crate::dynamic::schema::{self, DynamicConfig};
use crate::dynamic::{Fragment, Problem};

/// The namespace of everything this provider defines (`name@file`).
pub const NAMESPACE: &str = "file";
/// Largest dynamic file read (bigger files are a problem, not an out-of-memory).
const MAX_FILE_BYTES: u64 = 4 << 20;
/// Most files read from a directory.
const MAX_FILES: usize = 1000;

/// Where to read and whether to keep watching.
#[derive(Debug, Clone)]
pub struct FileSource {
    pub filename: Option<PathBuf>,
    pub directory: Option<PathBuf>,
    pub watch: bool,
    pub poll: Duration,
}

#[derive(Debug)]
struct Seen {
    modified: Option<SystemTime>,
    len: u64,
    /// SHA-256 of the content last read (the content itself is not kept).
    digest: [u8; 32],
    /// Last content that parsed.
    good: Option<Arc<DynamicConfig>>,
    error: Option<Vec<Problem>>,
}

/// Reads the files and remembers what it saw.
#[derive(Debug, Default)]
pub struct FileState {
    seen: BTreeMap<PathBuf, Seen>,
}

impl FileState {
    /// Re-read what changed and build the current fragment.
    pub fn scan(&mut self, src: &FileSource) -> Fragment {
        let mut problems = Vec::new();
        let mut paths = Vec::new();
        if let Some(f) = &src.filename {
            paths.push(f.clone());
        }
        if let Some(d) = &src.directory {
            collect_toml(d, &mut paths, &mut problems, 0);
        }
        if paths.len() > MAX_FILES {
            problems.push(Problem::new(
                "provider file",
                format!("more than {MAX_FILES} files; the rest are ignored"),
            ));
            paths.truncate(MAX_FILES);
        }
        self.seen.retain(|p, _| paths.contains(p));
        for path in &paths {
            self.refresh(path);
        }
        let good: Vec<(&PathBuf, &Arc<DynamicConfig>)> = (self.seen.iter())
            .filter_map(|(path, seen)| Some((path, seen.good.as_ref()?)))
            .collect();
        for seen in self.seen.values() {
            if let Some(errs) = &seen.error {
                problems.extend(errs.iter().cloned());
            }
        }
        // One file (the usual case): its configuration is the fragment's, shared, not copied.
        let config = match good.as_slice() {
            [(_, only)] => Arc::clone(only),
            _ => {
                let mut merged = DynamicConfig::default();
                for (path, cfg) in good {
                    merge(&mut merged, cfg, path, &mut problems);
                }
                Arc::new(merged)
            }
        };
        Fragment {
            config,
            problems,
            leases: Vec::new(),
        }
    }

    fn refresh(&mut self, path: &Path) {
        let source = format!("file {}", path.display());
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) => {
                let entry = self.seen.entry(path.to_path_buf()).or_insert(Seen {
                    modified: None,
                    len: 0,
                    digest: [0; 32],
                    good: None,
                    error: None,
                });
                entry.error = Some(vec![Problem::new(source, format!("cannot read: {e}"))]);
                return;
            }
        };
        let modified = meta.modified().ok();
        // FAT keeps 2 s timestamps: a file touched recently is re-read even with an equal mtime.
        let recent = modified
            .and_then(|m| m.elapsed().ok())
            .is_none_or(|age| age < Duration::from_secs(3));
        if let Some(prev) = self.seen.get(path)
            && prev.modified == modified
            && prev.len == meta.len()
            && !recent
        {
            return;
        }
        if meta.len() > MAX_FILE_BYTES {
            let entry = self.entry(path);
            entry.error = Some(vec![Problem::new(
                source,
                format!("larger than {MAX_FILE_BYTES} bytes; not read"),
            )]);
            return;
        }
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => {
                self.entry(path).error =
                    Some(vec![Problem::new(source, format!("cannot read: {e}"))]);
                return;
            }
        };
        let entry = self.entry(path);
        entry.modified = modified;
        entry.len = meta.len();
        let digest = content_digest(&bytes);
        if entry.digest == digest && (entry.good.is_some() || entry.error.is_some()) {
            return;
        }
        let parsed = match std::str::from_utf8(&bytes) {
            Ok(text) => schema::parse_dynamic(text, path).map_err(|errs| {
                errs.0
                    .iter()
                    .map(|e| Problem::new(source.clone(), e.to_string()))
                    .collect::<Vec<_>>()
            }),
            Err(e) => Err(vec![Problem::new(
                source.clone(),
                format!("not UTF-8: {e}"),
            )]),
        };
        entry.digest = digest;
        match parsed {
            Ok(cfg) => {
                entry.good = Some(Arc::new(cfg));
                entry.error = None;
            }
            Err(problems) => {
                if entry.good.is_some() {
                    tracing::warn!(file = %path.display(), "invalid dynamic configuration; keeping the last good one");
                }
                entry.error = Some(problems);
            }
        }
    }

    fn entry(&mut self, path: &Path) -> &mut Seen {
        self.seen.entry(path.to_path_buf()).or_insert(Seen {
            modified: None,
            len: 0,
            digest: [0; 32],
            good: None,
            error: None,
        })
    }
}

fn collect_toml(dir: &Path, out: &mut Vec<PathBuf>, problems: &mut Vec<Problem>, depth: u32) {
    if depth > 8 {
        return;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            problems.push(Problem::new(
                format!("directory {}", dir.display()),
                format!("cannot read: {e}"),
            ));
            return;
        }
    };
    let mut found: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    found.sort();
    for path in found {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            collect_toml(&path, out, problems, depth + 1);
        } else if name.ends_with(".toml") {
            out.push(path);
        }
    }
}

/// Merge `add` (from `path`) into `into`; a name defined twice with different content keeps the
/// first definition and records a problem.
fn content_digest(bytes: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn merge(into: &mut DynamicConfig, add: &DynamicConfig, path: &Path, problems: &mut Vec<Problem>) {
    into.merge_from(add, &mut |kind, name| {
        problems.push(Problem::new(
            format!("file {}", path.display()),
            format!("{kind} `{name}` is defined more than once with different settings; the first definition is used"),
        ));
    });
}

/// Run the provider: send the first fragment, then a new one whenever the files change.
pub async fn run(
    src: FileSource,
    tx: mpsc::Sender<(String, Fragment)>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut state = FileState::default();
    let mut last: Option<Fragment> = None;
    loop {
        let scan_src = src.clone();
        let (st, fragment) = match tokio::task::spawn_blocking(move || {
            let mut st = state;
            let f = st.scan(&scan_src);
            (st, f)
        })
        .await
        {
            Ok(x) => x,
            Err(e) => {
                tracing::error!(error = %e, "file provider scan failed");
                return;
            }
        };
        state = st;
        if last.as_ref() != Some(&fragment) {
            for p in &fragment.problems {
                if last.as_ref().is_none_or(|l| !l.problems.contains(p)) {
                    tracing::warn!(problem = %p, "file provider");
                }
            }
            last = Some(fragment.clone());
            if tx.send((NAMESPACE.to_string(), fragment)).await.is_err() {
                return;
            }
        }
        if !src.watch {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(src.poll) => {}
            _ = shutdown.changed() => return,
        }
    }
}
