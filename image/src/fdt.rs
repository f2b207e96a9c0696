//! A small, bounds-checked reader of flattened device trees (DTB, version 17): the enabled nodes
//! of a board's device tree with their `compatible` strings, which is what the kernel turns into
//! `of:` modaliases. The builder matches those against the kernel modules' aliases to find the
//! SoC drivers a board needs without a hand list ([`crate::modalias`]).

use crate::error::{Error, Result};

const MAGIC: u32 = 0xd00d_feed;
const BEGIN_NODE: u32 = 1;
const END_NODE: u32 = 2;
const PROP: u32 = 3;
const NOP: u32 = 4;
const END: u32 = 9;
/// Deeper than any real device tree; a bound on malformed input.
const MAX_DEPTH: usize = 64;

/// One node of the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Full path (`/soc/usb@7e980000`).
    pub path: String,
    /// The name without its unit address (`usb`).
    pub name: String,
    pub compatible: Vec<String>,
    /// `device_type`, when the node has one.
    pub device_type: Option<String>,
    /// `status` is absent, "okay" or "ok", and so is every parent's.
    pub enabled: bool,
}

impl Node {
    /// The modalias the kernel gives this node's platform device
    /// (`of:N<name>T<type>C<compatible>C<compatible>...`, `(null)` without a type).
    pub fn modalias(&self) -> String {
        let mut s = format!(
            "of:N{}T{}",
            self.name,
            self.device_type.as_deref().unwrap_or("(null)")
        );
        for c in &self.compatible {
            s.push('C');
            s.push_str(&c.replace(' ', "_"));
        }
        s
    }
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// NUL-terminated string at `at`.
fn cstr(b: &[u8], at: usize) -> Option<&str> {
    let rest = b.get(at..)?;
    let end = rest.iter().position(|&c| c == 0)?;
    std::str::from_utf8(&rest[..end]).ok()
}

/// A string-list property value (`"a\0b\0"`).
fn strings(v: &[u8]) -> Vec<String> {
    v.split(|&c| c == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

/// Every node of the DTB `name` (for error messages) in tree order.
pub fn nodes(name: &str, dtb: &[u8]) -> Result<Vec<Node>> {
    walk(dtb).ok_or_else(|| Error::Parse {
        path: name.into(),
        message: "not a readable flattened device tree".into(),
    })
}

fn walk(dtb: &[u8]) -> Option<Vec<Node>> {
    if be32(dtb, 0)? != MAGIC {
        return None;
    }
    let total = usize::try_from(be32(dtb, 4)?).ok()?;
    let dtb = dtb.get(..total)?;
    let structs = usize::try_from(be32(dtb, 8)?).ok()?;
    let strs = usize::try_from(be32(dtb, 12)?).ok()?;
    let mut out: Vec<Node> = Vec::new();
    // Open nodes: index into `out` and whether the node is enabled so far.
    let mut open: Vec<usize> = Vec::new();
    let mut at = structs;
    loop {
        let token = be32(dtb, at)?;
        at = at.checked_add(4)?;
        match token {
            BEGIN_NODE => {
                let unit = cstr(dtb, at)?;
                at = align4(at.checked_add(unit.len() + 1)?)?;
                if open.len() >= MAX_DEPTH {
                    return None;
                }
                let (parent_path, parent_enabled) = match open.last() {
                    Some(&i) => (out[i].path.as_str(), out[i].enabled),
                    None => ("", true),
                };
                let path = match (parent_path, unit) {
                    ("", _) => "/".to_string(),
                    ("/", u) => format!("/{u}"),
                    (p, u) => format!("{p}/{u}"),
                };
                out.push(Node {
                    path,
                    name: unit.split('@').next().unwrap_or(unit).to_string(),
                    compatible: Vec::new(),
                    device_type: None,
                    enabled: parent_enabled,
                });
                open.push(out.len() - 1);
            }
            END_NODE => {
                open.pop()?;
            }
            PROP => {
                let len = usize::try_from(be32(dtb, at)?).ok()?;
                let name_off = usize::try_from(be32(dtb, at + 4)?).ok()?;
                let value = dtb.get(at + 8..(at + 8).checked_add(len)?)?;
                at = align4(at + 8 + len)?;
                let node = &mut out[*open.last()?];
                match cstr(dtb, strs.checked_add(name_off)?)? {
                    "compatible" => node.compatible = strings(value),
                    "device_type" => node.device_type = strings(value).into_iter().next(),
                    "status" => {
                        let s = strings(value);
                        let ok = matches!(s.first().map(String::as_str), Some("okay" | "ok"));
                        node.enabled &= ok;
                    }
                    _ => {}
                }
            }
            NOP => {}
            END => return open.is_empty().then_some(out),
            _ => return None,
        }
    }
}

fn align4(at: usize) -> Option<usize> {
    at.checked_add(3).map(|a| a & !3)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A DTB with `/`, `/soc` (compatible "simple-bus") and `/soc/usb@7e980000`
    /// (compatible "brcm,bcm2835-usb", status `disabled` when asked).
    fn fixture(usb_status: Option<&str>) -> Vec<u8> {
        let mut strs = Vec::new();
        let mut name_of = |n: &str| {
            let off = strs.len() as u32;
            strs.extend_from_slice(n.as_bytes());
            strs.push(0);
            off
        };
        let compat = name_of("compatible");
        let status = name_of("status");
        let mut st = Vec::new();
        let begin = |st: &mut Vec<u8>, name: &str| {
            st.extend_from_slice(&BEGIN_NODE.to_be_bytes());
            st.extend_from_slice(name.as_bytes());
            st.push(0);
            while st.len() % 4 != 0 {
                st.push(0);
            }
        };
        let prop = |st: &mut Vec<u8>, off: u32, value: &[u8]| {
            st.extend_from_slice(&PROP.to_be_bytes());
            st.extend_from_slice(&(value.len() as u32).to_be_bytes());
            st.extend_from_slice(&off.to_be_bytes());
            st.extend_from_slice(value);
            while st.len() % 4 != 0 {
                st.push(0);
            }
        };
        begin(&mut st, "");
        begin(&mut st, "soc");
        prop(&mut st, compat, b"simple-bus\0");
        begin(&mut st, "usb@7e980000");
        prop(&mut st, compat, b"brcm,bcm2835-usb\0");
        if let Some(s) = usb_status {
            prop(&mut st, status, format!("{s}\0").as_bytes());
        }
        st.extend_from_slice(&END_NODE.to_be_bytes());
        st.extend_from_slice(&NOP.to_be_bytes());
        st.extend_from_slice(&END_NODE.to_be_bytes());
        st.extend_from_slice(&END_NODE.to_be_bytes());
        st.extend_from_slice(&END.to_be_bytes());
        let header = 40usize;
        let total = header + st.len() + strs.len();
        let mut out = Vec::new();
        for v in [
            MAGIC,
            total as u32,
            header as u32,
            (header + st.len()) as u32,
            0,
            17,
            16,
            0,
            strs.len() as u32,
            st.len() as u32,
        ] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        out.extend_from_slice(&st);
        out.extend_from_slice(&strs);
        out
    }

    #[test]
    fn nodes_and_modaliases() {
        let n = nodes("t.dtb", &fixture(None)).unwrap();
        let paths: Vec<_> = n.iter().map(|n| n.path.as_str()).collect();
        assert_eq!(paths, ["/", "/soc", "/soc/usb@7e980000"]);
        assert_eq!(n[2].modalias(), "of:NusbT(null)Cbrcm,bcm2835-usb");
        assert!(n.iter().all(|n| n.enabled));
        let n = nodes("t.dtb", &fixture(Some("okay"))).unwrap();
        assert!(n[2].enabled);
        let n = nodes("t.dtb", &fixture(Some("disabled"))).unwrap();
        assert!(!n[2].enabled);
    }

    #[test]
    fn malformed_trees_are_errors_not_panics() {
        let good = fixture(None);
        assert!(nodes("t", b"").is_err());
        for cut in [4, 20, 40, 60, good.len() - 8] {
            let mut b = good[..cut].to_vec();
            // Keep the header's total size honest so the walk runs off the end, not the check.
            if b.len() >= 8 {
                b[4..8].copy_from_slice(&(cut as u32).to_be_bytes());
            }
            assert!(nodes("t", &b).is_err(), "cut at {cut}");
        }
        let mut unbalanced = good.clone();
        // An END_NODE replaced by END leaves a node open: refused.
        let pos = good
            .windows(4)
            .rposition(|w| w == END_NODE.to_be_bytes())
            .unwrap();
        unbalanced[pos..pos + 4].copy_from_slice(&END.to_be_bytes());
        assert!(nodes("t", &unbalanced).is_err());
    }
}
