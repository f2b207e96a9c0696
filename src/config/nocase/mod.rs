//! TOML → serde with Traefik's key rules: struct field names match case-insensitively
//! (`entryPoints`, `entrypoints` and `EntryPoints` are one key), map keys (entry point, router,
//! header names) keep their case, and every problem carries a `file:line:col`.
//!
//! The document is parsed into toml's spanned tree ([`DeTable`]) and walked by the
//! deserializer in `walk.rs`, so each value is visited with its span in hand: unknown keys are
//! collected (not only the first) at the position of the key, type errors point at the offending
//! value, and a [`SpanMap`] of every key visited (by canonical path) is kept for validation done
//! after parsing. A value that fails to deserialize stops serde, so the walk is repeated with that
//! value pruned (a few rounds at most) to find the independent problems after it too; errors that
//! only follow from a pruned value (the "missing field" it leaves) are not reported.
//!
//! As in Traefik (paerser), scalars given as strings are accepted where a boolean or a number is
//! expected, scalars are accepted where a string is expected, a comma-separated string is
//! accepted where a list is expected, and `true` stands for an empty table.
//!
//! This module knows no schema and must not: the field lists come from serde's derive. It never
//! reads files and never panics on input.

mod walk;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::de::{self, DeserializeOwned};
use toml::de::{DeArray, DeTable, DeValue};

use super::error::{ConfigError, ConfigErrors, Locator, Span};
use super::spans::{KeySpans, SEP, SpanMap};
use walk::ValueDe;

/// Traefik options boma knows but does not implement, per serde struct name: a key listed here is
/// still rejected, with a message saying so instead of "unknown key".
pub type Unsupported = &'static [(&'static str, &'static [&'static str])];

/// How many times a document is walked again after a value failed, to find later problems.
const MAX_ROUNDS: usize = 16;

/// Deserializes a TOML document with case-insensitive field names; see the module docs.
pub fn from_toml<T: DeserializeOwned>(src: &str, origin: &Path) -> Result<T, ConfigErrors> {
    from_toml_spanned(src, origin, &[]).map(|(value, _)| value)
}

/// Like [`from_toml`], also returning where every key was found, and naming the Traefik options
/// listed in `unsupported` as such.
pub fn from_toml_spanned<T: DeserializeOwned>(
    src: &str,
    origin: &Path,
    unsupported: Unsupported,
) -> Result<(T, SpanMap), ConfigErrors> {
    let locator = Locator::new(origin, src);
    let (root, parse_errors) = DeTable::parse_recoverable(src);
    if !parse_errors.is_empty() {
        let errors = parse_errors
            .iter()
            .map(|e| locator.error(&e.span().unwrap_or(0..0), e.message()))
            .collect();
        return Err(ConfigErrors(errors).normalize());
    }
    let root_span = root.span();
    // The walk consumes the tree. Rather than keep a copy for the next round (the spanned tree
    // is ~25 times the text: megabytes for a thousand routers), a round after a failure parses
    // the text again and replays the prunes, so a valid document is parsed and held once.
    let mut tree = root.into_inner();
    let mut problems: Vec<(Span, String)> = Vec::new();
    let mut pruned: Vec<Vec<String>> = Vec::new();
    for _ in 0..MAX_ROUNDS {
        let ctx = Ctx {
            problems: RefCell::default(),
            spans: RefCell::default(),
            unsupported,
        };
        let result = T::deserialize(ValueDe::root(tree, root_span.clone(), &ctx));
        for problem in ctx.problems.into_inner() {
            if !problems.contains(&problem) {
                problems.push(problem);
            }
        }
        let e = match result {
            Ok(value) if problems.is_empty() => {
                return Ok((value, SpanMap::new(ctx.spans.into_inner())));
            }
            Ok(_) => break,
            Err(e) => e,
        };
        let path: Vec<String> = e
            .path
            .split(SEP)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        // An error above a pruned value is its consequence (a "missing field" only when that
        // field is the pruned one).
        let below = |p: &Vec<String>| p.len() > path.len() && p.starts_with(&path);
        let consequence = match e.missing {
            Some(field) => pruned
                .iter()
                .any(|p| below(p) && p.len() == path.len() + 1 && p[path.len()] == field),
            None => pruned.iter().any(below),
        };
        if !consequence {
            problems.push((e.span.unwrap_or_else(|| root_span.clone()), e.message));
        }
        let mut next = reparse(src, &pruned);
        if !prune(&mut next, &path) {
            break;
        }
        pruned.push(path);
        tree = next;
    }
    if problems.is_empty() {
        // Unreachable in practice (the first failure is always recorded); never return no error.
        problems.push((root_span, "the configuration could not be read".to_owned()));
    }
    let errors: Vec<ConfigError> = problems
        .iter()
        .map(|(span, message)| locator.error(span, message))
        .collect();
    Err(ConfigErrors(errors).normalize())
}

/// The document parsed again (it parsed without error before) with `pruned` removed in order.
fn reparse<'a>(src: &'a str, pruned: &[Vec<String>]) -> DeTable<'a> {
    let mut tree = DeTable::parse_recoverable(src).0.into_inner();
    for path in pruned {
        prune(&mut tree, path);
    }
    tree
}

/// Removes the value at `path` (or, failing that, its nearest removable ancestor) from the tree.
/// Struct field names match keys ignoring case. Returns false when nothing could be removed.
fn prune(tree: &mut DeTable<'_>, path: &[String]) -> bool {
    (1..=path.len())
        .rev()
        .any(|n| prune_in_table(tree, &path[..n]))
}

fn prune_in_table(table: &mut DeTable<'_>, path: &[String]) -> bool {
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    let keys: Vec<_> = table
        .keys()
        .filter(|k| k.get_ref().eq_ignore_ascii_case(first))
        .cloned()
        .collect();
    let mut removed = false;
    for key in keys {
        if rest.is_empty() {
            removed |= table.remove(&key).is_some();
        } else if let Some(value) = table.get_mut(&key) {
            removed |= prune_in_value(value.get_mut(), rest);
        }
    }
    removed
}

fn prune_in_value(value: &mut DeValue<'_>, path: &[String]) -> bool {
    match value {
        DeValue::Table(table) => prune_in_table(table, path),
        DeValue::Array(array) => {
            let Some((first, rest)) = path.split_first() else {
                return false;
            };
            let Ok(index) = first.parse::<usize>() else {
                return false;
            };
            if !rest.is_empty() {
                return array
                    .get_mut(index)
                    .is_some_and(|v| prune_in_value(v.get_mut(), rest));
            }
            if index >= array.len() {
                return false;
            }
            let mut items: Vec<_> = std::mem::replace(array, DeArray::new())
                .into_iter()
                .collect();
            items.remove(index);
            *array = items.into_iter().collect();
            true
        }
        _ => false,
    }
}

/// State shared by every level of one deserialization.
struct Ctx {
    problems: RefCell<Vec<(Span, String)>>,
    spans: RefCell<BTreeMap<String, KeySpans>>,
    unsupported: Unsupported,
}

impl Ctx {
    fn problem(&self, span: Span, message: String) {
        self.problems.borrow_mut().push((span, message));
    }

    fn record(&self, path: &str, key: Span, value: Span) {
        self.spans
            .borrow_mut()
            .insert(path.to_owned(), KeySpans { key, value });
    }

    fn unknown_key(&self, key: &str, strukt: &str, fields: &'static [&'static str]) -> String {
        let unsupported = self
            .unsupported
            .iter()
            .filter(|(name, _)| *name == strukt)
            .any(|(_, keys)| keys.iter().any(|k| k.eq_ignore_ascii_case(key)));
        if unsupported {
            return format!("`{key}` is a Traefik option that boma does not support");
        }
        if let Some(best) = closest(key, fields) {
            return format!("unknown key `{key}`; did you mean `{best}`?");
        }
        if fields.is_empty() {
            return format!("unknown key `{key}`: this table takes no keys");
        }
        let list: Vec<String> = fields.iter().map(|f| format!("`{f}`")).collect();
        format!("unknown key `{key}`; expected one of {}", list.join(", "))
    }
}

/// The error type of the walk: a message and, once known, the span and the canonical path of
/// the value it applies to.
#[derive(Debug)]
struct DeError {
    message: String,
    span: Option<Span>,
    path: String,
    /// For "missing field" errors, the field.
    missing: Option<&'static str>,
}

impl DeError {
    /// Places the error at `span` and `path` unless a deeper level already did.
    fn at(mut self, span: &Span, path: &str) -> Self {
        if self.span.is_none() {
            self.span = Some(span.clone());
        }
        if self.path.is_empty() {
            self.path = path.to_owned();
        }
        self
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self {
            message: msg.to_string(),
            span: None,
            path: String::new(),
            missing: None,
        }
    }

    fn missing_field(field: &'static str) -> Self {
        Self {
            missing: Some(field),
            ..Self::custom(format_args!("missing field `{field}`"))
        }
    }
}

impl From<toml::de::Error> for DeError {
    fn from(e: toml::de::Error) -> Self {
        Self {
            message: e.message().to_owned(),
            span: e.span(),
            path: String::new(),
            missing: None,
        }
    }
}

/// The field name closest to a mistyped key, if close enough to be a likely typo.
fn closest(key: &str, fields: &[&'static str]) -> Option<&'static str> {
    let limit = match key.len() {
        0..=3 => 1,
        4..=7 => 2,
        _ => 3,
    };
    fields
        .iter()
        .map(|f| (edit_distance(key, f), *f))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, f)| f)
}

/// Levenshtein distance between two strings, ignoring ASCII case.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().map(|c| c.to_ascii_lowercase()).collect();
    let b: Vec<char> = b.chars().map(|c| c.to_ascii_lowercase()).collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}
