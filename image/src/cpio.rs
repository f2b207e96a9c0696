//! A newc (`070701`) cpio writer for the initramfs, the format the kernel unpacks. Entries are
//! written in path order with inode numbers counted from 1, owner root, one fixed mtime: the same
//! entries always give the same bytes.

use std::collections::BTreeMap;

/// What a path is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Dir,
    File { data: Vec<u8>, executable: bool },
    CharDev { major: u32, minor: u32 },
}

/// An archive being assembled: path (no leading `/`) to node.
#[derive(Debug, Default)]
pub struct Archive {
    entries: BTreeMap<String, (Node, u32)>,
}

impl Archive {
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a directory and its parents.
    pub fn dir(&mut self, path: &str) {
        let path = path.trim_matches('/');
        let mut at = String::new();
        for part in path.split('/').filter(|p| !p.is_empty()) {
            if !at.is_empty() {
                at.push('/');
            }
            at.push_str(part);
            self.entries.entry(at.clone()).or_insert((Node::Dir, 0o755));
        }
    }

    fn parent(&mut self, path: &str) {
        if let Some((parent, _)) = path.rsplit_once('/') {
            self.dir(parent);
        }
    }

    /// Add (or replace) a regular file, creating its parent directories.
    pub fn file(&mut self, path: &str, data: Vec<u8>, executable: bool) {
        let path = path.trim_matches('/').to_string();
        self.parent(&path);
        let mode = if executable { 0o755 } else { 0o644 };
        self.entries
            .insert(path, (Node::File { data, executable }, mode));
    }

    /// Add a character device node.
    pub fn char_dev(&mut self, path: &str, major: u32, minor: u32, mode: u32) {
        let path = path.trim_matches('/').to_string();
        self.parent(&path);
        self.entries
            .insert(path, (Node::CharDev { major, minor }, mode));
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The archive bytes (uncompressed), every entry with modification time `mtime`.
    pub fn to_bytes(&self, mtime: u32) -> Vec<u8> {
        let mut out = Vec::new();
        for (ino, (path, (node, perm))) in self.entries.iter().enumerate() {
            let (kind, nlink, data, rdev): (u32, u32, &[u8], (u32, u32)) = match node {
                Node::Dir => (0o040000, 2, &[], (0, 0)),
                Node::File { data, .. } => (0o100000, 1, data, (0, 0)),
                Node::CharDev { major, minor } => (0o020000, 1, &[], (*major, *minor)),
            };
            let ino = u32::try_from(ino + 1).unwrap_or(u32::MAX);
            header(
                &mut out,
                ino,
                kind | perm,
                nlink,
                mtime,
                data.len(),
                rdev,
                path,
            );
            out.extend_from_slice(data);
            pad4(&mut out);
        }
        header(&mut out, 0, 0, 1, 0, 0, (0, 0), "TRAILER!!!");
        out
    }
}

#[allow(clippy::too_many_arguments)]
fn header(
    out: &mut Vec<u8>,
    ino: u32,
    mode: u32,
    nlink: u32,
    mtime: u32,
    size: usize,
    rdev: (u32, u32),
    name: &str,
) {
    let size = u32::try_from(size).unwrap_or(u32::MAX);
    let namesize = u32::try_from(name.len() + 1).unwrap_or(u32::MAX);
    let fields = [
        ino, mode, 0, 0, nlink, mtime, size, 0, 0, rdev.0, rdev.1, namesize, 0,
    ];
    out.extend_from_slice(b"070701");
    for f in fields {
        out.extend_from_slice(format!("{f:08x}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
}

fn pad4(out: &mut Vec<u8>) {
    while out.len() % 4 != 0 {
        out.push(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newc_layout_and_order() {
        let mut a = Archive::new();
        a.file("etc/x", b"hi".to_vec(), false);
        a.char_dev("dev/console", 5, 1, 0o600);
        let bytes = a.to_bytes(7);
        // dev, dev/console, etc, etc/x, trailer
        assert_eq!(a.len(), 4);
        let text = String::from_utf8_lossy(&bytes);
        let names: Vec<_> = ["dev\0", "dev/console\0", "etc\0", "etc/x\0", "TRAILER!!!\0"]
            .iter()
            .map(|n| text.find(n).expect("name present"))
            .collect();
        assert!(names.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(&bytes[..6], b"070701");
        // first header: ino 1, directory 0755, mtime 7
        assert_eq!(&bytes[6..22], b"00000001000041ed");
        assert_eq!(&bytes[6 + 5 * 8..6 + 6 * 8], b"00000007");
        assert_eq!(bytes.len() % 4, 0);
        assert_eq!(a.to_bytes(7), bytes);
    }
}
