//! Configuration errors that point at a place in a file (`file:line:col: message`), and the
//! [`Locator`] that turns byte offsets of a source text into such places.
//!
//! Everything here is plain data: no parsing, no I/O, no knowledge of any schema. A line of 0 means
//! "the whole file" (for example when the file cannot be read) and is displayed as `file: message`.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// A byte range in a source text.
pub type Span = Range<usize>;

/// One problem in a configuration file, with the place it was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The file the problem is in (as given by the caller, not canonicalized).
    pub file: PathBuf,
    /// 1-based line, or 0 when the problem concerns the whole file.
    pub line: u32,
    /// 1-based column in characters (not bytes), or 0 with `line` 0.
    pub col: u32,
    /// What is wrong, in one line.
    pub message: String,
}

impl ConfigError {
    /// A problem that concerns the whole file (unreadable, empty, ...): no line, no column.
    pub fn whole_file(file: &Path, message: impl Into<String>) -> Self {
        Self {
            file: file.to_path_buf(),
            line: 0,
            col: 0,
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            let file = self.file.display();
            write!(f, "{file}:{}:{}: {}", self.line, self.col, self.message)
        }
    }
}

/// Every problem found in one go, in file order; displayed one per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// The problems, in the order they appear in the file.
    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.0.iter()
    }

    /// How many problems there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there is no problem (never the case for a returned `Err`).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Sorts by file, line and column and drops exact repeats.
    pub(crate) fn normalize(mut self) -> Self {
        self.0
            .sort_by(|a, b| (&a.file, a.line, a.col).cmp(&(&b.file, b.line, b.col)));
        self.0.dedup();
        self
    }
}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        Self(vec![e])
    }
}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Maps byte offsets of one source text to 1-based line and column numbers.
#[derive(Debug, Clone)]
pub struct Locator<'a> {
    file: &'a Path,
    src: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> Locator<'a> {
    /// Indexes the line starts of `src`, which was read from `file`.
    pub fn new(file: &'a Path, src: &'a str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(src.match_indices('\n').map(|(i, _)| i + 1));
        Self {
            file,
            src,
            line_starts,
        }
    }

    /// The file this locator points into.
    pub fn file(&self) -> &Path {
        self.file
    }

    /// 1-based (line, column) of a byte offset; the column counts characters. Offsets past the
    /// end, or inside a multi-byte character, are clamped.
    pub fn position(&self, offset: usize) -> (u32, u32) {
        let mut offset = offset.min(self.src.len());
        while !self.src.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.line_starts.partition_point(|&s| s <= offset).max(1);
        let start = self.line_starts[line - 1];
        let col = self.src[start..offset].chars().count() + 1;
        (saturate(line), saturate(col))
    }

    /// An error placed at the start of `span`.
    pub fn error(&self, span: &Span, message: impl Into<String>) -> ConfigError {
        let (line, col) = self.position(span.start);
        ConfigError {
            file: self.file.to_path_buf(),
            line,
            col,
            message: message.into(),
        }
    }
}

fn saturate(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
