//! What a board's `config.txt` makes the Raspberry Pi firmware load, so the build can fail when
//! one of those files is not on the boot partition (a Pi with a missing file does not boot, and
//! says nothing on a headless gateway): the kernel (`kernel=`), the initramfs (`initramfs FILE`),
//! the device tree (`device_tree=`), and the GPU firmware pair. The pair follows the firmware's
//! rules: `start_file=`/`fixup_file=` when set; else `start_x=1` selects `start_x.elf` /
//! `fixup_x.dat`, `start_debug=1` the `_db` pair, and `gpu_mem` of 16 (MiB) or less the cut-down
//! `_cd` pair; otherwise `start.elf` / `fixup.dat`. The Pi 4 family's files carry a `4`
//! (`start4cd.elf`). Conditional sections (`[pi3]`, `[all]`, ...) are all taken into account:
//! every file any of them names must be there.

/// A file the firmware will load, with the line that makes it do so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Implied {
    pub file: String,
    /// 1-based line number in config.txt.
    pub line: usize,
    /// The setting, as written (`gpu_mem=16`).
    pub because: String,
}

/// Files `text` makes the firmware load. `pi4`: the board boots the Pi 4 family's firmware
/// (`start4*.elf`).
pub fn implied(text: &str, pi4: bool) -> Vec<Implied> {
    let mut out = Vec::new();
    let mut start: Option<(usize, String, String)> = None;
    let mut fixup: Option<(usize, String, String)> = None;
    // The variant chosen by a shortcut, with the line that chose it.
    let mut variant: Option<(usize, &str, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let setting = raw.split('#').next().unwrap_or("").trim();
        if setting.is_empty() || setting.starts_with('[') {
            continue;
        }
        let mut add = |file: &str| {
            out.push(Implied {
                file: file.to_string(),
                line,
                because: setting.to_string(),
            })
        };
        if let Some(rest) = setting.strip_prefix("initramfs") {
            if let Some(file) = rest.split_whitespace().next() {
                add(file);
            }
            continue;
        }
        let Some((key, value)) = setting.split_once('=') else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        match key {
            "kernel" | "device_tree" if !value.is_empty() => add(value),
            "start_file" => start = Some((line, value.to_string(), setting.to_string())),
            "fixup_file" => fixup = Some((line, value.to_string(), setting.to_string())),
            "start_x" if value == "1" => variant = Some((line, "x", setting.to_string())),
            "start_debug" if value == "1" => variant = Some((line, "db", setting.to_string())),
            "gpu_mem" if value.parse::<u32>().is_ok_and(|m| m <= 16) => {
                variant = variant.or(Some((line, "cd", setting.to_string())));
            }
            _ => {}
        }
    }
    let family = if pi4 { "4" } else { "" };
    let (line, because, start_name, fixup_name) = match &variant {
        Some((line, v, because)) => {
            let sep = if pi4 { "" } else { "_" };
            (
                *line,
                because.clone(),
                format!("start{family}{sep}{v}.elf"),
                format!("fixup{family}{sep}{v}.dat"),
            )
        }
        None => (
            0,
            "(the default)".to_string(),
            format!("start{family}.elf"),
            format!("fixup{family}.dat"),
        ),
    };
    for (explicit, default_name) in [(start, start_name), (fixup, fixup_name)] {
        out.push(match explicit {
            Some((line, file, because)) => Implied {
                file,
                line,
                because,
            },
            None => Implied {
                file: default_name,
                line,
                because: because.clone(),
            },
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(text: &str, pi4: bool) -> Vec<String> {
        implied(text, pi4).into_iter().map(|i| i.file).collect()
    }

    #[test]
    fn the_firmware_pair_follows_the_settings() {
        let base = "arm_64bit=1\nkernel=vmlinuz\ninitramfs initrd.img followkernel\n";
        assert_eq!(
            files(base, false),
            ["vmlinuz", "initrd.img", "start.elf", "fixup.dat"]
        );
        assert_eq!(
            files(&format!("{base}gpu_mem=16 # smallest\n"), false)[2..],
            ["start_cd.elf", "fixup_cd.dat"]
        );
        assert_eq!(
            files(&format!("{base}gpu_mem=16\n"), true)[2..],
            ["start4cd.elf", "fixup4cd.dat"]
        );
        assert_eq!(
            files(&format!("{base}gpu_mem=64\n"), true)[2..],
            ["start4.elf", "fixup4.dat"]
        );
        assert_eq!(
            files(&format!("{base}gpu_mem=16\nstart_x=1\n"), false)[2..],
            ["start_x.elf", "fixup_x.dat"]
        );
        let explicit = format!("{base}gpu_mem=16\nstart_file=mine.elf\nfixup_file=mine.dat\n");
        assert_eq!(files(&explicit, false)[2..], ["mine.elf", "mine.dat"]);
        let cd = implied(&format!("{base}gpu_mem=16\n"), false);
        assert_eq!((cd[2].line, cd[2].because.as_str()), (4, "gpu_mem=16"));
    }

    #[test]
    fn every_section_counts_and_comments_do_not() {
        let text = "# device_tree=commented.dtb\n[pi3]\ndevice_tree=a.dtb\n[pi3+]\ndevice_tree=b.dtb\n[all]\n";
        assert_eq!(
            files(text, false),
            ["a.dtb", "b.dtb", "start.elf", "fixup.dat"]
        );
    }
}
