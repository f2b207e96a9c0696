//! Just enough of ELF64 (little-endian, as Debian's arm64 binaries are) to take dynamically
//! linked programs from Debian packages: a file's program interpreter (`PT_INTERP`), the
//! libraries it needs (`DT_NEEDED`) and its own `DT_SONAME`, read from the `.dynamic` section
//! and the string table it links to. Every offset is checked against the file; a file that is
//! not such an ELF is an error, never a panic.

/// What the image builder needs to know of one ELF file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dynamic {
    /// `PT_INTERP`: the loader path (`/lib/ld-linux-aarch64.so.1`), for programs.
    pub interp: Option<String>,
    pub needed: Vec<String>,
    pub soname: Option<String>,
}

const PT_INTERP: u32 = 3;
const SHT_DYNAMIC: u32 = 6;
const DT_NULL: u64 = 0;
const DT_NEEDED: u64 = 1;
const DT_SONAME: u64 = 14;
const EM_AARCH64: u16 = 183;

pub(crate) fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

pub(crate) fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

pub(crate) fn usize_at(b: &[u8], at: usize) -> Option<usize> {
    usize::try_from(u64_at(b, at)?).ok()
}

/// The NUL-terminated string at `at` of `b`.
fn c_str(b: &[u8], at: usize) -> Option<String> {
    let rest = b.get(at..)?;
    let end = rest.iter().position(|&c| c == 0)?;
    String::from_utf8(rest[..end].to_vec()).ok()
}

/// Whether `b` starts like an ELF file.
pub fn is_elf(b: &[u8]) -> bool {
    b.starts_with(b"\x7fELF")
}

/// The dynamic-linking facts of an aarch64 ELF64 file; why not when it is not one.
pub fn dynamic(b: &[u8]) -> Result<Dynamic, String> {
    if !is_elf(b) || b.get(4) != Some(&2) || b.get(5) != Some(&1) {
        return Err("not a little-endian ELF64 file".into());
    }
    if u16_at(b, 18) != Some(EM_AARCH64) {
        return Err("not an aarch64 ELF file".into());
    }
    let bad = || "truncated or inconsistent ELF headers".to_string();
    let mut out = Dynamic::default();
    // Program headers: the interpreter.
    let (phoff, phentsize, phnum) = (
        usize_at(b, 32).ok_or_else(bad)?,
        usize::from(u16_at(b, 54).ok_or_else(bad)?),
        usize::from(u16_at(b, 56).ok_or_else(bad)?),
    );
    for i in 0..phnum {
        let ph = (i.checked_mul(phentsize))
            .and_then(|o| o.checked_add(phoff))
            .ok_or_else(bad)?;
        if u32_at(b, ph).ok_or_else(bad)? == PT_INTERP {
            let off = usize_at(b, ph.checked_add(8).ok_or_else(bad)?).ok_or_else(bad)?;
            out.interp = Some(c_str(b, off).ok_or_else(bad)?);
        }
    }
    // Section headers: `.dynamic` and the string table its sh_link names.
    let (shoff, shentsize, shnum) = (
        usize_at(b, 40).ok_or_else(bad)?,
        usize::from(u16_at(b, 58).ok_or_else(bad)?),
        usize::from(u16_at(b, 60).ok_or_else(bad)?),
    );
    let section = |i: usize| shoff.checked_add(i.checked_mul(shentsize)?);
    for i in 0..shnum {
        let sh = section(i)
            .filter(|s| s.checked_add(64).is_some())
            .ok_or_else(bad)?;
        if u32_at(b, sh + 4).ok_or_else(bad)? != SHT_DYNAMIC {
            continue;
        }
        let (off, size) = (
            usize_at(b, sh + 24).ok_or_else(bad)?,
            usize_at(b, sh + 32).ok_or_else(bad)?,
        );
        let link = usize::try_from(u32_at(b, sh + 40).ok_or_else(bad)?).map_err(|_| bad())?;
        let strtab = usize_at(
            b,
            section(link)
                .and_then(|s| s.checked_add(24))
                .ok_or_else(bad)?,
        )
        .ok_or_else(bad)?;
        let entries = b
            .get(off..off.checked_add(size).ok_or_else(bad)?)
            .ok_or_else(bad)?;
        for entry in entries.chunks_exact(16) {
            let tag = u64_at(entry, 0).ok_or_else(bad)?;
            let val = usize_at(entry, 8).ok_or_else(bad)?;
            let name = || {
                (strtab.checked_add(val))
                    .and_then(|at| c_str(b, at))
                    .ok_or_else(bad)
            };
            match tag {
                DT_NULL => break,
                DT_NEEDED => out.needed.push(name()?),
                DT_SONAME => out.soname = Some(name()?),
                _ => {}
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal aarch64 ELF64: one PT_INTERP, a .dynamic with NEEDED, SONAME, NULL, and its
    /// string table.
    fn fixture() -> Vec<u8> {
        let mut b = vec![0u8; 0x200];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[18..20].copy_from_slice(&EM_AARCH64.to_le_bytes());
        // Program headers at 0x40, one of 56 bytes: PT_INTERP at 0x100.
        b[32..40].copy_from_slice(&0x40u64.to_le_bytes());
        b[54..56].copy_from_slice(&56u16.to_le_bytes());
        b[56..58].copy_from_slice(&1u16.to_le_bytes());
        b[0x40..0x44].copy_from_slice(&PT_INTERP.to_le_bytes());
        b[0x48..0x50].copy_from_slice(&0x100u64.to_le_bytes());
        b[0x100..0x11b].copy_from_slice(b"/lib/ld-linux-aarch64.so.1\0");
        // String table at 0x120.
        let strings = b"\0libc.so.6\0libnl-3.so.200\0";
        b[0x120..0x120 + strings.len()].copy_from_slice(strings);
        // .dynamic at 0x140: NEEDED 1, SONAME 11, NULL.
        for (i, (tag, val)) in [(DT_NEEDED, 1u64), (DT_SONAME, 11), (DT_NULL, 0)]
            .iter()
            .enumerate()
        {
            let at = 0x140 + i * 16;
            b[at..at + 8].copy_from_slice(&tag.to_le_bytes());
            b[at + 8..at + 16].copy_from_slice(&val.to_le_bytes());
        }
        // Section headers at 0x180 (64 bytes each): 0 = strtab, 1 = dynamic linking to 0.
        b[40..48].copy_from_slice(&0x180u64.to_le_bytes());
        b[58..60].copy_from_slice(&64u16.to_le_bytes());
        b[60..62].copy_from_slice(&2u16.to_le_bytes());
        b.resize(0x200 + 0x80, 0);
        b[0x180 + 24..0x180 + 32].copy_from_slice(&0x120u64.to_le_bytes());
        let dynamic = 0x1c0;
        b[dynamic + 4..dynamic + 8].copy_from_slice(&SHT_DYNAMIC.to_le_bytes());
        b[dynamic + 24..dynamic + 32].copy_from_slice(&0x140u64.to_le_bytes());
        b[dynamic + 32..dynamic + 40].copy_from_slice(&48u64.to_le_bytes());
        b
    }

    #[test]
    fn interpreter_needed_and_soname() {
        let d = dynamic(&fixture()).expect("parses");
        assert_eq!(d.interp.as_deref(), Some("/lib/ld-linux-aarch64.so.1"));
        assert_eq!(d.needed, ["libc.so.6"]);
        assert_eq!(d.soname.as_deref(), Some("libnl-3.so.200"));
    }

    #[test]
    fn anything_else_is_an_error_not_a_panic() {
        assert!(dynamic(b"#!/bin/sh\n").is_err());
        let good = fixture();
        for len in 0..good.len() {
            let _ = dynamic(&good[..len]);
        }
        let mut wrong = good.clone();
        wrong[18] = 62; // x86-64
        assert!(dynamic(&wrong).unwrap_err().contains("aarch64"));
        let mut far = good;
        far[0x1c0 + 24..0x1c0 + 32].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(dynamic(&far).is_err());
    }
}
