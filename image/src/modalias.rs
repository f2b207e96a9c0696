//! Drivers found by modalias, not listed. At build time: which of the kernel package's modules
//! a board's device trees call for (their enabled nodes' `of:` modaliases matched against the
//! modules' alias patterns, under [`DT_DRIVER_DIRS`]), and the `modules.dep` and `modules.alias`
//! files of the subset the image carries (Debian's package has neither: depmod runs when it is
//! installed). At boot, busybox `modprobe` reads those two files: init's coldplug passes it every
//! device's modalias, `mdev -d` does the same for devices that appear later, and the kernel
//! itself asks it for filesystems, crypto and netfilter modules.

use std::collections::{BTreeMap, BTreeSet};

use crate::fdt::Node;
use crate::kmod::Module;

/// Where a driver found in a device tree must live to be carried: storage, USB, regulators,
/// resets, PHYs, networking, watchdogs and random-number generators. The rest (graphics, sound,
/// camera, I2C, PWM, LEDs, thermal) is what a headless gateway does not use.
pub const DT_DRIVER_DIRS: [&str; 8] = [
    "drivers/mmc/",
    "drivers/usb/",
    "drivers/regulator/",
    "drivers/reset/",
    "drivers/phy/",
    "drivers/net/",
    "drivers/watchdog/",
    "drivers/char/hw_random/",
];

/// fnmatch(3) without flags, as modprobe matches a modalias against alias patterns: `*`, `?`
/// and bracket sets (`[a-z]`, `[!0-9]`).
pub fn glob(pattern: &str, text: &str) -> bool {
    glob_bytes(pattern.as_bytes(), text.as_bytes())
}

fn glob_bytes(p: &[u8], t: &[u8]) -> bool {
    // Iterative with one backtrack point (the last `*`), linear in practice.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi + 1, ti));
                pi += 1;
                continue;
            }
            Some(b'?') => {
                pi += 1;
                ti += 1;
                continue;
            }
            Some(b'[') => {
                if let Some((matched, next)) = bracket(&p[pi..], t[ti])
                    && matched
                {
                    pi += next;
                    ti += 1;
                    continue;
                }
            }
            Some(&c) if c == t[ti] => {
                pi += 1;
                ti += 1;
                continue;
            }
            _ => {}
        }
        match star {
            Some((sp, st)) => {
                pi = sp;
                ti = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// Whether `c` is in the bracket set at the start of `p`, and the set's length; `None` when the
/// set is not closed (then `[` is not special and fails to match here).
fn bracket(p: &[u8], c: u8) -> Option<(bool, usize)> {
    let mut i = 1;
    let negate = matches!(p.get(i), Some(b'!' | b'^'));
    if negate {
        i += 1;
    }
    let mut found = false;
    let mut first = true;
    loop {
        let lo = *p.get(i)?;
        if lo == b']' && !first {
            return Some((found != negate, i + 1));
        }
        first = false;
        if p.get(i + 1) == Some(&b'-') && p.get(i + 2).is_some_and(|&h| h != b']') {
            let hi = p[i + 2];
            found |= (lo..=hi).contains(&c);
            i += 3;
        } else {
            found |= lo == c;
            i += 1;
        }
    }
}

/// The modules, under [`DT_DRIVER_DIRS`], that some enabled node of `nodes` calls for, sorted.
pub fn dt_modules(nodes: &[Node], modules: &BTreeMap<String, Module>) -> BTreeSet<String> {
    let drivers: Vec<(&Module, Vec<&str>)> = modules
        .values()
        .filter(|m| DT_DRIVER_DIRS.iter().any(|d| m.path.contains(d)))
        .map(|m| {
            let of = m
                .aliases
                .iter()
                .map(String::as_str)
                .filter(|a| a.starts_with("of:"))
                .collect();
            (m, of)
        })
        .filter(|(_, of): &(&Module, Vec<&str>)| !of.is_empty())
        .collect();
    let mut out = BTreeSet::new();
    for node in nodes
        .iter()
        .filter(|n| n.enabled && !n.compatible.is_empty())
    {
        let alias = node.modalias();
        for (m, of) in &drivers {
            if of.iter().any(|p| glob(p, &alias)) {
                out.insert(m.name.clone());
            }
        }
    }
    out
}

/// `modules.dep` for `carried` (which holds every dependency of its members): one line per
/// module, `name.ko: dep.ko ...`, dependencies in kmod's order (the last one loads first).
/// Files sit flat in `/lib/modules/<abi>/`.
pub fn modules_dep(carried: &[&Module]) -> String {
    let by_name: BTreeMap<&str, &Module> = carried.iter().map(|m| (m.name.as_str(), *m)).collect();
    let mut out = String::new();
    for (name, m) in &by_name {
        let mut order = Vec::new();
        let mut seen = BTreeSet::from([*name]);
        load_order(m, &by_name, &mut seen, &mut order);
        out.push_str(name);
        out.push_str(".ko:");
        for dep in order.iter().rev() {
            out.push(' ');
            out.push_str(dep);
            out.push_str(".ko");
        }
        out.push('\n');
    }
    out
}

fn load_order<'a>(
    m: &'a Module,
    by_name: &BTreeMap<&str, &'a Module>,
    seen: &mut BTreeSet<&'a str>,
    order: &mut Vec<&'a str>,
) {
    for dep in &m.depends {
        if let Some(d) = by_name.get(dep.as_str())
            && seen.insert(d.name.as_str())
        {
            load_order(d, by_name, seen, order);
            order.push(d.name.as_str());
        }
    }
}

/// `modules.alias` for `carried`: `alias <pattern> <module>`, by module name.
pub fn modules_alias(carried: &[&Module]) -> String {
    let mut sorted: Vec<&&Module> = carried.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let mut out = String::new();
    for m in sorted {
        for a in &m.aliases {
            out.push_str("alias ");
            out.push_str(a);
            out.push(' ');
            out.push_str(&m.name);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(name: &str, path: &str, deps: &[&str], aliases: &[&str]) -> Module {
        Module {
            path: format!("lib/modules/6.1/kernel/{path}/{name}.ko"),
            name: name.into(),
            depends: deps.iter().map(|d| d.to_string()).collect(),
            aliases: aliases.iter().map(|a| a.to_string()).collect(),
            bytes: Vec::new(),
        }
    }

    #[test]
    fn glob_is_fnmatch() {
        assert!(glob(
            "of:N*T*Cbrcm,bcm2835-usb",
            "of:NusbT(null)Cbrcm,bcm2835-usb"
        ));
        assert!(glob(
            "of:N*T*Cbrcm,bcm2835-usbC*",
            "of:NusbT(null)Cbrcm,bcm2835-usbCsnps,dwc2"
        ));
        assert!(!glob(
            "of:N*T*Cbrcm,bcm2835-usb",
            "of:NusbT(null)Cbrcm,bcm2835-usbx"
        ));
        assert!(glob(
            "usb:v*p*d*dc*dsc*dp*ic02isc06ip00in*",
            "usb:v0525pA4A2d0333dc02dsc00dp00ic02isc06ip00in00"
        ));
        assert!(glob(
            "pci:v*d*sv*sd*bc0Csc03i30*",
            "pci:v00001106d00003483sv00001106sd00003483bc0Csc03i30"
        ));
        assert!(glob("a?c", "abc") && !glob("a?c", "ac"));
        assert!(glob("x[0-9]y", "x5y") && !glob("x[!0-9]y", "x5y") && glob("x[!0-9]y", "xay"));
        assert!(!glob("x[0-9", "x5") && glob("*", "") && !glob("", "a"));
        assert!(glob("fs-ext4", "fs-ext4") && !glob("fs-ext4", "fs-ext3"));
    }

    #[test]
    fn device_tree_nodes_pick_drivers_in_the_allowed_dirs() {
        let mut all = BTreeMap::new();
        for m in [
            module(
                "dwc2",
                "drivers/usb/dwc2",
                &[],
                &["of:N*T*Cbrcm,bcm2835-usb", "of:N*T*Cbrcm,bcm2835-usbC*"],
            ),
            module(
                "vc4",
                "drivers/gpu/drm/vc4",
                &[],
                &["of:N*T*Cbrcm,bcm2835-usb"],
            ),
            module(
                "phy_generic",
                "drivers/usb/phy",
                &[],
                &["of:N*T*Cusb-nop-xceiv"],
            ),
            module(
                "sdhci_iproc",
                "drivers/mmc/host",
                &[],
                &["of:N*T*Cbrcm,bcm2835-sdhci"],
            ),
        ] {
            all.insert(m.name.clone(), m);
        }
        let node = |name: &str, compat: &str, enabled: bool| Node {
            path: format!("/soc/{name}"),
            name: name.into(),
            compatible: vec![compat.into()],
            device_type: None,
            enabled,
        };
        let nodes = [
            node("usb", "brcm,bcm2835-usb", true),
            node("phy", "usb-nop-xceiv", true),
            node("mmc", "brcm,bcm2835-sdhci", false),
        ];
        let got: Vec<_> = dt_modules(&nodes, &all).into_iter().collect();
        assert_eq!(got, ["dwc2", "phy_generic"]);
    }

    #[test]
    fn index_files() {
        let usbnet = module("usbnet", "drivers/net/usb", &["mii", "usbcore"], &[]);
        let cdc = module(
            "cdc_ether",
            "drivers/net/usb",
            &["usbnet", "usbcore"],
            &["usb:v*p*d*dc*dsc*dp*ic02isc06ip00in*"],
        );
        let mii = module("mii", "drivers/net", &[], &[]);
        let usbcore = module("usbcore", "drivers/usb/core", &["usb_common"], &[]);
        let common = module("usb_common", "drivers/usb/common", &[], &[]);
        let carried = [&cdc, &usbnet, &mii, &usbcore, &common];
        let dep = modules_dep(&carried);
        assert!(
            dep.contains("cdc_ether.ko: usbnet.ko usbcore.ko usb_common.ko mii.ko\n"),
            "{dep}"
        );
        // Every dependency is listed after whatever it needs (kmod: the last loads first).
        let line = dep
            .lines()
            .find(|l| l.starts_with("cdc_ether.ko:"))
            .unwrap();
        let deps: Vec<_> = line.split_whitespace().skip(1).collect();
        let pos = |n: &str| deps.iter().position(|d| *d == n).unwrap();
        assert!(pos("usb_common.ko") > pos("usbcore.ko") && pos("usbcore.ko") > pos("usbnet.ko"));
        assert!(dep.contains("mii.ko:\n"));
        assert_eq!(dep.lines().count(), 5);
        assert_eq!(
            modules_alias(&carried),
            "alias usb:v*p*d*dc*dsc*dp*ic02isc06ip00in* cdc_ether\n"
        );
    }
}
