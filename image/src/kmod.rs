//! Kernel modules: which `.ko` files a board needs and in which order init loads them. Debian's
//! kernel package ships no `modules.dep` (depmod runs at install time), so the dependencies come
//! from each module's own `.modinfo` ELF section (`depends=`, `softdep=pre:`), read here with a
//! small bounds-checked ELF64 reader. Names compare with `-` and `_` as equal, as in the kernel.
//! A soft dependency may name an alias (`ext4`'s `crypto-crc32c`): [`link`] resolves it to the
//! module that provides it, so the image carries it and `modules.dep` loads it first.

use std::collections::{BTreeMap, BTreeSet};

use crate::elf::{u16_at, u32_at, usize_at as u64_at};
use crate::error::{Error, Result};

/// One module of the kernel package.
#[derive(Debug, Clone)]
pub struct Module {
    /// Path inside the package (`lib/modules/<abi>/kernel/...ko`).
    pub path: String,
    pub name: String,
    pub depends: Vec<String>,
    /// Modalias patterns (`alias=` lines: `of:N*T*Cbrcm,bcm2835-usb`, `fs-ext4`).
    pub aliases: Vec<String>,
    pub bytes: Vec<u8>,
}

/// `-` and `_` are the same in module names.
pub fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

/// The `.modinfo` section of a little-endian ELF64 object, as `key=value` strings.
pub fn modinfo(elf: &[u8]) -> Option<Vec<String>> {
    if elf.get(0..4)? != b"\x7fELF" || *elf.get(4)? != 2 || *elf.get(5)? != 1 {
        return None;
    }
    let shoff = u64_at(elf, 0x28)?;
    let shentsize = usize::from(u16_at(elf, 0x3A)?);
    let shnum = usize::from(u16_at(elf, 0x3C)?);
    let shstrndx = usize::from(u16_at(elf, 0x3E)?);
    if shentsize < 0x40 {
        return None;
    }
    let section = |i: usize| -> Option<(u32, usize, usize)> {
        let at = shoff.checked_add(i.checked_mul(shentsize)?)?;
        Some((
            u32_at(elf, at)?,
            u64_at(elf, at.checked_add(0x18)?)?,
            u64_at(elf, at.checked_add(0x20)?)?,
        ))
    };
    let (_, stroff, strsize) = section(shstrndx)?;
    let strtab = elf.get(stroff..stroff.checked_add(strsize)?)?;
    for i in 0..shnum {
        let (name, off, size) = section(i)?;
        let name = strtab.get(usize::try_from(name).ok()?..)?;
        let end = name.iter().position(|&c| c == 0)?;
        if &name[..end] == b".modinfo" {
            let data = elf.get(off..off.checked_add(size)?)?;
            return Some(
                data.split(|&c| c == 0)
                    .filter(|s| !s.is_empty())
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect(),
            );
        }
    }
    None
}

/// Parse one module file.
pub fn parse(path: &str, bytes: Vec<u8>) -> Result<Module> {
    let bad = |message: &str| Error::BadModule {
        path: path.to_string(),
        message: message.to_string(),
    };
    let info = modinfo(&bytes).ok_or_else(|| bad("no readable .modinfo section"))?;
    let file_name = path.rsplit('/').next().unwrap_or(path);
    let mut name = normalize(file_name.trim_end_matches(".ko"));
    let mut depends = Vec::new();
    let mut aliases = Vec::new();
    for kv in &info {
        if let Some(v) = kv.strip_prefix("alias=") {
            aliases.push(v.to_string());
        } else if let Some(v) = kv.strip_prefix("name=") {
            name = normalize(v);
        } else if let Some(v) = kv.strip_prefix("depends=") {
            depends.extend(v.split(',').filter(|d| !d.is_empty()).map(normalize));
        } else if let Some(v) = kv.strip_prefix("softdep=") {
            // "pre: a b post: c": only the pre: ones must be there first.
            let mut pre = false;
            for word in v.split_whitespace() {
                match word {
                    "pre:" => pre = true,
                    "post:" => pre = false,
                    w if pre => depends.push(normalize(w)),
                    _ => {}
                }
            }
        }
    }
    Ok(Module {
        path: path.to_string(),
        name,
        depends,
        aliases,
        bytes,
    })
}

/// Point every dependency at a module of the package: names of modules stay, built-in ones and
/// soft dependencies that nothing provides are dropped, and an alias becomes the module whose
/// alias pattern matches it (the first by name, as modprobe would load).
pub fn link(modules: &mut BTreeMap<String, Module>, builtin: &BTreeSet<String>) {
    let mut resolved: BTreeMap<String, Option<String>> = BTreeMap::new();
    for m in modules.values() {
        for dep in &m.depends {
            if modules.contains_key(dep) || resolved.contains_key(dep) {
                continue;
            }
            let by_alias = (!builtin.contains(dep))
                .then(|| {
                    modules.values().find(|p| {
                        p.aliases
                            .iter()
                            .any(|a| crate::modalias::glob(&normalize(a), dep))
                    })
                })
                .flatten()
                .map(|p| p.name.clone());
            resolved.insert(dep.clone(), by_alias);
        }
    }
    for m in modules.values_mut() {
        let deps = std::mem::take(&mut m.depends);
        for dep in deps {
            let target = match resolved.get(&dep) {
                None => Some(dep),
                Some(alias) => alias.clone(),
            };
            if let Some(t) = target
                && t != m.name
                && !m.depends.contains(&t)
            {
                m.depends.push(t);
            }
        }
    }
}

/// The modules to load for `wanted`, dependencies first, each once. Names that are built into
/// the kernel (`builtin`) are skipped; soft dependencies that exist nowhere are ignored (they are
/// optional by nature), hard ones are errors.
pub fn resolve<'a>(
    wanted: &[String],
    modules: &'a BTreeMap<String, Module>,
    builtin: &BTreeSet<String>,
) -> Result<Vec<&'a Module>> {
    let mut order = Vec::new();
    let mut seen = BTreeSet::new();
    for name in wanted {
        let name = normalize(name);
        if !modules.contains_key(&name) && !builtin.contains(&name) {
            return Err(Error::UnknownModule(name));
        }
        visit(&name, modules, &mut seen, &mut order, 0)?;
    }
    Ok(order)
}

fn visit<'a>(
    name: &str,
    modules: &'a BTreeMap<String, Module>,
    seen: &mut BTreeSet<String>,
    order: &mut Vec<&'a Module>,
    depth: usize,
) -> Result<()> {
    if depth > 64 {
        return Err(Error::UnknownModule(format!("{name} (dependency loop)")));
    }
    if !seen.insert(name.to_string()) {
        return Ok(());
    }
    let Some(module) = modules.get(name) else {
        return Ok(()); // built in, or an optional soft dependency
    };
    for dep in &module.depends {
        visit(dep, modules, seen, order, depth + 1)?;
    }
    order.push(module);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(name: &str, deps: &[&str]) -> Module {
        Module {
            path: format!("kernel/{name}.ko"),
            name: name.to_string(),
            depends: deps.iter().map(|d| d.to_string()).collect(),
            aliases: Vec::new(),
            bytes: Vec::new(),
        }
    }

    #[test]
    fn dependencies_come_first_once() {
        let mut all = BTreeMap::new();
        for m in [
            module("nft_masq", &["nf_tables", "nf_nat"]),
            module("nf_nat", &["nf_conntrack"]),
            module("nf_conntrack", &[]),
            module("nf_tables", &[]),
        ] {
            all.insert(m.name.clone(), m);
        }
        let builtin = BTreeSet::from(["mmc_block".to_string()]);
        let wanted = vec![
            "nft-masq".to_string(),
            "nf_tables".into(),
            "mmc_block".into(),
        ];
        let order: Vec<_> = resolve(&wanted, &all, &builtin)
            .unwrap()
            .iter()
            .map(|m| m.name.as_str())
            .collect();
        assert_eq!(order, ["nf_tables", "nf_conntrack", "nf_nat", "nft_masq"]);
        let missing = resolve(&["nope".to_string()], &all, &builtin);
        assert!(matches!(missing, Err(Error::UnknownModule(n)) if n == "nope"));
    }

    #[test]
    fn soft_dependencies_on_aliases_are_linked() {
        let mut all = BTreeMap::new();
        let mut crc = module("crc32c_generic", &[]);
        crc.aliases = vec!["crypto-crc32c".into(), "crc32c".into()];
        for m in [
            module("ext4", &["jbd2", "crypto_crc32c", "nowhere", "mmc_block"]),
            module("jbd2", &[]),
            crc,
        ] {
            all.insert(m.name.clone(), m);
        }
        let builtin = BTreeSet::from(["mmc_block".to_string()]);
        link(&mut all, &builtin);
        assert_eq!(all["ext4"].depends, ["jbd2", "crc32c_generic"]);
        let order: Vec<_> = resolve(&["ext4".to_string()], &all, &builtin)
            .unwrap()
            .iter()
            .map(|m| m.name.as_str())
            .collect();
        assert_eq!(order, ["jbd2", "crc32c_generic", "ext4"]);
    }

    #[test]
    fn modinfo_rejects_garbage_without_panicking() {
        assert!(modinfo(b"").is_none());
        assert!(modinfo(b"\x7fELF\x02\x01").is_none());
        let mut header = vec![0u8; 64];
        header[..6].copy_from_slice(b"\x7fELF\x02\x01");
        header[0x28..0x30].copy_from_slice(&u64::MAX.to_le_bytes());
        header[0x3A] = 0x40;
        header[0x3C] = 3;
        assert!(modinfo(&header).is_none());
    }
}
