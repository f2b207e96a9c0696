//! Where each key of a parsed configuration file was: a map from canonical paths (schema field
//! names, map keys as written, array indexes) to the spans of the key and of its value.
//!
//! Filled by `nocase` while it deserializes and read by validation that runs after parsing, so
//! that a problem found late still points at the right `line:col`. Holds spans only, never values.

use std::collections::BTreeMap;

use super::error::Span;

/// Where each key of a parsed document was, by canonical path: struct fields under their schema
/// name (whatever case the file used), map keys as written, array items by index.
#[derive(Debug, Clone, Default)]
pub struct SpanMap {
    entries: BTreeMap<String, KeySpans>,
}

/// The spans of one key and of its value (for an array item, both are the item).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySpans {
    /// The key as written (for a `[table]` header, the last component of the header).
    pub key: Span,
    /// The value (for a `[table]` header, the header).
    pub value: Span,
}

pub(crate) const SEP: char = '\u{0}';

fn join(path: &[&str]) -> String {
    let mut out = String::new();
    for (i, seg) in path.iter().enumerate() {
        if i > 0 {
            out.push(SEP);
        }
        out.push_str(seg);
    }
    out
}

pub(crate) fn child_path(parent: &str, seg: &str) -> String {
    if parent.is_empty() {
        seg.to_owned()
    } else {
        format!("{parent}{SEP}{seg}")
    }
}

impl SpanMap {
    pub(crate) fn new(entries: BTreeMap<String, KeySpans>) -> Self {
        Self { entries }
    }

    /// The spans recorded for `path` (e.g. `["entryPoints", "web", "address"]`), if it was in the
    /// file.
    pub fn get(&self, path: &[&str]) -> Option<&KeySpans> {
        self.entries.get(&join(path))
    }

    /// The value at `path`, or else the key of its nearest ancestor present in the file, or else
    /// the start of the file: the best place to report a problem about that value.
    pub fn value_span(&self, path: &[&str]) -> Span {
        match self.get(path) {
            Some(spans) => spans.value.clone(),
            None => self.key_span(path),
        }
    }

    /// The key at `path`, or else the key of its nearest ancestor present in the file, or else
    /// the start of the file: the best place to report a problem about a whole table.
    pub fn key_span(&self, path: &[&str]) -> Span {
        (1..=path.len())
            .rev()
            .find_map(|n| self.get(&path[..n]).map(|s| s.key.clone()))
            .unwrap_or(0..0)
    }
}
