//! Opening the files a configuration names (certificates, keys, users files), which must be
//! regular files: a FIFO or a device would block the open, or never end, and with it every
//! reload. The path is checked before it is opened, then opened without blocking and checked
//! again once open, so that no path swapped between the check and the open can block it.

use std::fs::File;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The error of a path that is not a regular file.
#[derive(Debug)]
struct NotRegular;

impl std::fmt::Display for NotRegular {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("not a regular file")
    }
}

impl std::error::Error for NotRegular {}

/// `path` opened for reading, when it is a regular file.
pub fn open(path: &Path) -> io::Result<File> {
    // Checked first: opening a device or a FIFO has effects of its own (a watchdog armed, a
    // waiting writer woken).
    if !std::fs::metadata(path)?.is_file() {
        return Err(io::Error::other(NotRegular));
    }
    // And again once open, for a path swapped in between. O_NONBLOCK: opening a FIFO for
    // reading returns at once instead of waiting for a writer (it changes nothing for a
    // regular file's reads); O_NOCTTY: a terminal never becomes boma's.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::other(NotRegular));
    }
    Ok(file)
}

/// Whether `e` says the path was not a regular file.
pub fn not_regular(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<NotRegular>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_files_open_others_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("users");
        std::fs::write(&file, "a:b\n").unwrap();
        assert!(open(&file).is_ok());
        let e = open(dir.path()).unwrap_err();
        assert!(not_regular(&e), "{e}");
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.is_ok_and(|s| s.success()), "mkfifo");
        // In a thread: a regression blocks in open(); the test then fails, not hangs.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(open(&fifo).map(drop)));
        let got = rx.recv_timeout(std::time::Duration::from_secs(10));
        let e = got.expect("open blocked on a FIFO").unwrap_err();
        assert!(
            not_regular(&e) && e.to_string() == "not a regular file",
            "{e}"
        );
        assert!(!not_regular(
            &open(&dir.path().join("missing")).unwrap_err()
        ));
    }
}
