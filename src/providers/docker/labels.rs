//! Container labels as a tree, the way Traefik's label parser (paerser) sees them: keys are cut
//! at dots, `name[N]` becomes `name` then `[N]`, and siblings whose names differ only in case
//! are one node (spelled as the first key in byte order spells it). A node can carry a value
//! (a leaf, or Traefik's `tls=true` style "enable with defaults") and children.
//!
//! A subtree is handed to serde by writing it as a small TOML document, one line per label, and
//! reading it with `config::nocase` — the same case-insensitive, lenient reader the file provider
//! uses (strings accepted for numbers, booleans and comma-separated lists; `true` for an empty
//! table). Errors come back with a line number, which names the offending label.
//!
//! Pure and bounded: no I/O, no panics on any label; oversized or malformed keys are reported,
//! never trusted.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::de::DeserializeOwned;

use super::Container;
use crate::config::nocase;

/// Most labels read from one container (Docker itself allows far more; gateways do not need it).
pub const MAX_LABELS: usize = 2048;
/// Longest label key accepted.
pub const MAX_KEY_LEN: usize = 512;
/// Longest label value accepted.
pub const MAX_VALUE_LEN: usize = 16 * 1024;
/// Deepest key accepted (segments).
const MAX_DEPTH: usize = 16;
/// Largest `[N]` index accepted.
const MAX_INDEX: usize = 255;

/// One node of the label tree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Node {
    /// The segment as first spelled (`[0]` for list items).
    pub name: String,
    /// The value of the label ending here, if any.
    pub value: Option<String>,
    /// The full key of that label (for messages).
    pub key: Option<String>,
    pub children: Vec<Node>,
}

/// A label that could not be placed in the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLabel {
    pub key: String,
    pub why: String,
    /// The segments before the fault (after the root), so the object it belongs to can be left
    /// out: `traefik.http.routers.r..middlewares` gives `[http, routers, r]`.
    pub prefix: Vec<String>,
}

impl Node {
    /// The child named `name`, ignoring ASCII case.
    pub fn child(&self, name: &str) -> Option<&Node> {
        self.children
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(name))
    }

    /// Remove and return the child named `name`, ignoring ASCII case.
    pub fn take(&mut self, name: &str) -> Option<Node> {
        let i = self
            .children
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(name))?;
        Some(self.children.remove(i))
    }

    /// The value of child `name`, when it is a non-empty leaf.
    pub fn leaf(&self, name: &str) -> Option<&str> {
        self.child(name)
            .and_then(|c| c.value.as_deref())
            .filter(|v| !v.is_empty())
    }

    /// Every label key in this subtree, in tree order.
    pub fn keys(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.collect_keys(&mut out);
        out
    }

    fn collect_keys(&self, out: &mut Vec<String>) {
        if let Some(k) = &self.key {
            out.push(k.clone());
        }
        for c in &self.children {
            c.collect_keys(out);
        }
    }

    /// Set a leaf value below this node, creating the path (used for defaults).
    pub fn set(&mut self, path: &[&str], value: &str) {
        let Some((first, rest)) = path.split_first() else {
            self.value = Some(value.to_string());
            return;
        };
        let i = match self
            .children
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(first))
        {
            Some(i) => i,
            None => {
                self.children.push(Node {
                    name: (*first).to_string(),
                    ..Node::default()
                });
                self.children.len() - 1
            }
        };
        self.children[i].set(rest, value);
    }
}

/// Build the tree of every label whose key starts with `root.` (ASCII case ignored). Keys are
/// visited in byte order, as Traefik sorts them, so the first spelling of a name wins.
pub fn parse(labels: &BTreeMap<String, String>, root: &str) -> (Node, Vec<BadLabel>) {
    let mut tree = Node {
        name: root.to_string(),
        ..Node::default()
    };
    let mut bad = Vec::new();
    let prefix_len = root.len() + 1;
    let mut seen = 0usize;
    for (key, value) in labels {
        let Some(head) = key.get(..prefix_len) else {
            continue;
        };
        if !head.eq_ignore_ascii_case(&format!("{root}.")) {
            continue;
        }
        seen += 1;
        if seen > MAX_LABELS {
            bad.push(BadLabel {
                key: key.clone(),
                why: format!("more than {MAX_LABELS} labels; the rest are ignored"),
                prefix: Vec::new(),
            });
            break;
        }
        match split_key(key, prefix_len) {
            Ok(path) if value.len() <= MAX_VALUE_LEN => insert(&mut tree, &path, key, value),
            Ok(path) => bad.push(BadLabel {
                key: key.clone(),
                why: format!("value longer than {MAX_VALUE_LEN} bytes"),
                prefix: path,
            }),
            Err((why, prefix)) => bad.push(BadLabel {
                key: key.clone(),
                why,
                prefix,
            }),
        }
    }
    (tree, bad)
}

/// Cut a key after its root into segments; `name[3]` gives `name` and `[3]`. On error, also
/// the segments read before the fault.
fn split_key(key: &str, skip: usize) -> Result<Vec<String>, (String, Vec<String>)> {
    let mut out = Vec::new();
    split_into(key, skip, &mut out).map_err(|why| (why, out.clone()))?;
    Ok(out)
}

fn split_into(key: &str, skip: usize, out: &mut Vec<String>) -> Result<(), String> {
    let rest = key.get(skip..).unwrap_or("");
    if key.len() > MAX_KEY_LEN {
        out.extend(rest.split('.').take(3).map(str::to_string));
        return Err(format!("key longer than {MAX_KEY_LEN} bytes"));
    }
    for seg in rest.split('.') {
        if seg.is_empty() {
            return Err("empty segment in the key (two dots, or a dot at the end)".into());
        }
        if seg.starts_with('[') {
            return Err(format!("`{seg}`: a list index must follow a name"));
        }
        match (seg.find('['), seg.ends_with(']')) {
            (None, false) => {
                if seg.contains(']') {
                    return Err(format!("`{seg}`: unbalanced `]`"));
                }
                out.push(seg.to_string());
            }
            (Some(open), true) => {
                let (name, index) = seg.split_at(open);
                let digits = &index[1..index.len() - 1];
                let n: usize = digits
                    .parse()
                    .map_err(|_| format!("`{seg}`: the index must be a number"))?;
                if n > MAX_INDEX {
                    return Err(format!("`{seg}`: index above {MAX_INDEX}"));
                }
                out.push(name.to_string());
                out.push(format!("[{n}]"));
            }
            _ => return Err(format!("`{seg}`: unbalanced brackets")),
        }
    }
    if out.len() > MAX_DEPTH {
        return Err(format!("more than {MAX_DEPTH} segments"));
    }
    Ok(())
}

fn insert(node: &mut Node, path: &[String], key: &str, value: &str) {
    let Some((first, rest)) = path.split_first() else {
        node.value = Some(value.to_string());
        node.key = Some(key.to_string());
        return;
    };
    let i = match node
        .children
        .iter()
        .position(|c| c.name.eq_ignore_ascii_case(first))
    {
        Some(i) => i,
        None => {
            node.children.push(Node {
                name: first.clone(),
                ..Node::default()
            });
            node.children.len() - 1
        }
    };
    insert(&mut node.children[i], rest, key, value);
}

fn is_index(name: &str) -> bool {
    name.starts_with('[') && name.ends_with(']')
}

/// Is `v` Traefik's "off" for an optional section (`tls=false`)?
fn is_false(v: &str) -> bool {
    matches!(v, "0" | "f" | "F" | "FALSE" | "false" | "False")
}

/// Sections Traefik lets a label switch on with `true` and off with `false` (`allowEmpty`).
const SWITCHES: [&str; 4] = ["tls", "sticky", "cookie", "healthcheck"];

/// The TOML text of a subtree (its children at the top level), and for each line the labels
/// it came from.
pub struct Toml {
    pub text: String,
    pub lines: Vec<Vec<String>>,
}

/// Write `node`'s children as a TOML document.
pub fn to_toml(node: &Node) -> Toml {
    let mut t = Toml {
        text: String::new(),
        lines: Vec::new(),
    };
    for c in &node.children {
        emit(c, &mut Vec::new(), &mut t);
    }
    t
}

fn emit(node: &Node, path: &mut Vec<String>, t: &mut Toml) {
    path.push(node.name.clone());
    if node.children.is_empty() {
        let v = node.value.as_deref().unwrap_or("");
        let switch = SWITCHES.iter().any(|s| node.name.eq_ignore_ascii_case(s));
        if !(switch && is_false(v)) {
            line(t, path, &scalar(v), node.keys());
        }
    } else if node.value.as_deref().is_some_and(is_false) {
        // `tls=false` with `tls.*` labels: the section is off (Traefik's "disabled" node).
    } else if node.children.iter().all(|c| is_index(&c.name)) {
        let mut items: Vec<&Node> = node.children.iter().collect();
        items.sort_by_key(|c| index_of(&c.name));
        let mut text = String::from("[");
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                text.push_str(", ");
            }
            inline(item, &mut text);
        }
        text.push(']');
        line(t, path, &text, node.keys());
    } else {
        // Mixed `a[0]` and `a.b` fall here too: `[0]` is then an unknown key, which the
        // reader reports on that label's line.
        for c in &node.children {
            emit(c, path, t);
        }
    }
    path.pop();
}

fn index_of(name: &str) -> usize {
    name.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .unwrap_or(usize::MAX)
}

/// A node as an inline TOML value: a table of its children, or its scalar value.
fn inline(node: &Node, out: &mut String) {
    if node.children.is_empty() {
        out.push_str(&scalar(node.value.as_deref().unwrap_or("")));
        return;
    }
    if node.children.iter().all(|c| is_index(&c.name)) {
        out.push('[');
        for (i, c) in node.children.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            inline(c, out);
        }
        out.push(']');
        return;
    }
    out.push('{');
    for (i, c) in node.children.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&quote(&c.name));
        out.push_str(" = ");
        inline(c, out);
    }
    out.push('}');
}

fn line(t: &mut Toml, path: &[String], value: &str, keys: Vec<String>) {
    let dotted: Vec<String> = path.iter().map(|p| quote(p)).collect();
    let _ = writeln!(t.text, "{} = {value}", dotted.join("."));
    t.lines.push(keys);
}

/// A label value as TOML: `true` as a boolean (it also switches a section on), anything else
/// as a string (the reader converts strings to numbers, booleans and lists where needed).
fn scalar(v: &str) -> String {
    if v.eq_ignore_ascii_case("true") {
        "true".to_string()
    } else {
        quote(v)
    }
}

/// A TOML basic string.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Deserialize `node`'s subtree into `T`. Each error names the label(s) it is about, or
/// `fallback` when it concerns the object as a whole.
pub fn deserialize<T: DeserializeOwned>(node: &Node, fallback: &str) -> Result<T, Vec<String>> {
    let toml = to_toml(node);
    nocase::from_toml_spanned::<T>(&toml.text, Path::new("labels"), &[])
        .map(|(v, _)| v)
        .map_err(|errs| {
            errs.iter()
                .map(|e| {
                    let labels = usize::try_from(e.line)
                        .ok()
                        .and_then(|l| l.checked_sub(1))
                        .and_then(|l| toml.lines.get(l))
                        .filter(|keys| !keys.is_empty());
                    match labels {
                        Some(keys) => format!("label {}: {}", keys.join(", "), e.message),
                        None => format!("{fallback}: {}", e.message),
                    }
                })
                .collect()
        })
}

/// Both label trees, `boma.*` laid over `traefik.*`, and the keys that could not be read.
pub(super) fn label_tree(c: &Container) -> (Node, Vec<BadLabel>) {
    let (mut tree, mut bad) = parse(&c.labels, "traefik");
    let (boma, bad_boma) = parse(&c.labels, "boma");
    bad.extend(bad_boma);
    overlay(&mut tree, boma);
    (tree, bad)
}

fn overlay(dst: &mut Node, src: Node) {
    if src.value.is_some() {
        dst.value = src.value;
        dst.key = src.key;
    }
    for child in src.children {
        match dst
            .children
            .iter_mut()
            .find(|d| d.name.eq_ignore_ascii_case(&child.name))
        {
            Some(d) => overlay(d, child),
            None => dst.children.push(child),
        }
    }
}
