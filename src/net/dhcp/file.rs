//! The lease file on disk, and knowing whether the file there is the one boma last read or
//! wrote. On the image the data partition is mounted in the background while boma starts, so
//! boma may read "no lease file" from the bare mount point and only later find the real one
//! there; an operator may also copy a lease file in. Such a file is merged into the table before
//! the next write instead of being overwritten: its leases survive.
//!
//! Blocking file I/O only (the server runs it on tokio's blocking pool); durable writes go
//! through `crate::store`. Nothing here parses leases.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A file's identity: device and inode (a durable write's rename makes a new inode).
type FileId = (u64, u64);

fn id_of(path: &Path) -> Option<FileId> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// The lease file and the identity of the one boma last read or wrote.
#[derive(Debug, Clone)]
pub struct LeaseFile {
    pub path: PathBuf,
    known: Option<FileId>,
}

/// What [`LeaseFile::write`] did.
#[derive(Debug)]
pub enum Written {
    Done,
    /// Not written: the file there is another one; here is its text, to merge first.
    Foreign(String),
}

impl LeaseFile {
    pub fn new(path: PathBuf) -> LeaseFile {
        LeaseFile { path, known: None }
    }

    /// The file's text (`None` when there is none yet), remembering which file it was.
    pub fn load(&mut self) -> io::Result<Option<String>> {
        let id = id_of(&self.path);
        match std::fs::read_to_string(&self.path) {
            Ok(text) => {
                self.known = id;
                Ok(Some(text))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Replace the file with `text` durably, unless a file boma has not seen is there: then
    /// nothing is written and its text is returned (and counts as seen).
    pub fn write(&mut self, text: &str) -> io::Result<Written> {
        if let Some(id) = id_of(&self.path)
            && Some(id) != self.known
        {
            return match self.load()? {
                Some(foreign) => Ok(Written::Foreign(foreign)),
                None => self.write(text),
            };
        }
        if let Some(dir) = self.path.parent() {
            crate::store::ensure_dir(dir)?;
        }
        crate::store::write_durably(&self.path, text.as_bytes())?;
        self.known = id_of(&self.path);
        Ok(Written::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_boma_did_not_write_is_handed_back_once_then_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut f = LeaseFile::new(dir.path().join("state/leases"));
        assert!(f.load().expect("load").is_none(), "no file yet");
        assert!(matches!(f.write("one\n"), Ok(Written::Done)));
        assert!(
            matches!(f.write("two\n"), Ok(Written::Done)),
            "its own file is replaced"
        );
        // Somebody else's file appears (a partition mounted over the directory).
        let other = dir.path().join("other");
        std::fs::write(&other, "theirs\n").expect("write");
        std::fs::rename(&other, &f.path).expect("rename");
        match f.write("three\n") {
            Ok(Written::Foreign(text)) => assert_eq!(text, "theirs\n"),
            r => panic!("expected the foreign file back, got {r:?}"),
        }
        assert_eq!(
            std::fs::read_to_string(&f.path).expect("read"),
            "theirs\n",
            "not overwritten"
        );
        assert!(matches!(f.write("merged\n"), Ok(Written::Done)));
        assert_eq!(std::fs::read_to_string(&f.path).expect("read"), "merged\n");
    }
}
