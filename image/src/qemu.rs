//! Booting an image in `qemu-system-aarch64`, headless, for people (`make qemu`) and tests.
//!
//! Two ways in. Through the bootloader ([`Boot::uboot`], what `make qemu` does): QEMU starts
//! Debian's U-Boot from the image's boot partition (`-bios` on `virt`; on `raspi3b`, which cannot
//! run the Pi firmware, `-kernel u-boot.bin` with the DTB and `-append` as the firmware would
//! give them), and U-Boot's `boot.scr` picks the A/B slot from the disk; a guest reboot is a
//! reboot, QEMU keeps running. Directly (the tests that are not about updates, a few seconds
//! faster): the harness reads slot a's `vmlinuz` and `initrd.img` and passes them with
//! `-kernel`/`-initrd`/`-append`, and a guest reboot ends QEMU. Either way the image itself is
//! the disk (virtio-blk on `virt`, the SD card on `raspi3b`), `cmdline.txt` plus [`Boot::append`]
//! is the command line (on `virt` through U-Boot, written to `cmdline.env`), and the serial
//! console is the process's stdio. On `virt`, the first NIC (`eth0`, the WAN), and on
//! `raspi3b` a USB network adapter (`usb0`, the Pi 3's Ethernet is not emulated), is QEMU's
//! user-mode network: it forwards 127.0.0.1 ports of the namespace QEMU runs in to the guest's
//! DNS (53, UDP and TCP) and HTTP (80), and its gateway 10.0.2.2 reaches that namespace's
//! loopback. A second NIC (`eth1`, the LAN, [`Lan`]) is an existing host tap device, or a socket
//! multicast netdev that another guest can join. With `netns`, QEMU runs inside that network
//! namespace (`ip netns exec`), where the tap and the forwarded ports then live.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::build::UBOOT;
use crate::error::{Error, Result};
use crate::{fat, uboot};

/// The QEMU machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Machine {
    /// `-M virt -cpu cortex-a53`: the qemu-virt board.
    Virt,
    /// `-M raspi3b` with the Pi 3 kernel and DTB of the rpi3 image, a USB network adapter as
    /// its network.
    Raspi3b,
}

/// How to boot.
#[derive(Debug, Clone)]
pub struct Boot {
    pub machine: Machine,
    pub image: PathBuf,
    /// Where the kernel, initramfs and DTB are extracted to.
    pub workdir: PathBuf,
    pub http_port: u16,
    pub dns_port: u16,
    /// Appended to cmdline.txt.
    pub append: String,
    /// Second NIC (eth1): the LAN side (`virt` only).
    pub lan: Option<Lan>,
    /// Run QEMU in this network namespace (`ip netns exec NAME`): the tap and the forwarded
    /// ports are that namespace's.
    pub netns: Option<String>,
    /// Serial on the terminal with QEMU's monitor multiplexed (Ctrl-A X quits), for people.
    pub interactive: bool,
    /// Boot through U-Boot and the image's A/B slots; otherwise slot a's kernel directly.
    pub uboot: bool,
}

/// The guest's second NIC (`eth1`), the gateway's LAN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lan {
    /// An existing tap device of the namespace QEMU runs in (`ip tuntap add mode tap`), used
    /// as it is: `-netdev tap,ifname=NAME,script=no,downscript=no`. Bridge it with whatever
    /// should be on the LAN.
    Tap(String),
    /// `-netdev socket,mcast=ADDR:PORT`: a LAN that other QEMU guests join.
    Mcast(String),
}

/// Whether `name` can be a network interface name (1 to 15 bytes, no '/', ':', ',', '=',
/// whitespace or NUL): a comma would end QEMU's `-netdev` option.
fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && !name
            .bytes()
            .any(|b| b.is_ascii_whitespace() || matches!(b, b'/' | b':' | b',' | b'=' | 0))
}

/// QEMU's user-mode network as the guest's WAN, forwarding the boot's host ports to the guest's
/// HTTP (80) and DNS (53) ports.
fn user_net(boot: &Boot) -> String {
    format!(
        "user,id=wan,hostfwd=tcp:127.0.0.1:{h}-:80,hostfwd=tcp:127.0.0.1:{d}-:53,hostfwd=udp:127.0.0.1:{d}-:53",
        h = boot.http_port,
        d = boot.dns_port
    )
}

/// The qemu-system-aarch64 command for a boot.
pub fn command(boot: &Boot) -> Result<Command> {
    std::fs::create_dir_all(&boot.workdir).map_err(|e| Error::io(&boot.workdir, e))?;
    let append = kernel_cmdline(boot)?;
    let mut c = match &boot.netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, "qemu-system-aarch64"]);
            c
        }
        None => Command::new("qemu-system-aarch64"),
    };
    let drive = format!("file={},format=raw", boot.image.display());
    match boot.machine {
        Machine::Virt => virt_args(&mut c, boot, &drive)?,
        Machine::Raspi3b => raspi3b_args(&mut c, boot, &drive)?,
    }
    c.args(["-display", "none"]);
    boot_args(&mut c, boot, &append)?;
    Ok(c)
}

/// Copy `name` from the image's boot partition into the boot's workdir; its path there.
fn extract(boot: &Boot, name: &str) -> Result<PathBuf> {
    let bytes = fat::read_file(&boot.image, name)?;
    let path = boot.workdir.join(name.replace('/', "-"));
    std::fs::write(&path, bytes).map_err(|e| Error::io(&path, e))?;
    Ok(path)
}

/// The kernel command line: the image's `cmdline.txt`, the machine's quirks, [`Boot::append`]
/// and, booted directly, the slot.
fn kernel_cmdline(boot: &Boot) -> Result<String> {
    let cmdline = String::from_utf8_lossy(&fat::read_file(&boot.image, "cmdline.txt")?)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    // QEMU's BCM2835 power manager resets the machine as soon as the watchdog is armed (it does
    // not count down), so the raspi smoke boot leaves the watchdog off.
    // On raspi3b the network is a USB adapter (raspi3b_args), named usb0 by usbnet.
    let quirk = match boot.machine {
        Machine::Raspi3b => "boma.watchdog=off boma.iface=usb0",
        Machine::Virt => "",
    };
    // Booted directly, the harness stands in for U-Boot and says which slot it booted.
    let slot = if boot.uboot { "" } else { "boma.slot=a" };
    Ok(format!("{cmdline} {quirk} {} {slot}", boot.append)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" "))
}

/// `virt`: the machine, the image as a virtio disk, the WAN and LAN NICs, the serial console.
fn virt_args(c: &mut Command, boot: &Boot, drive: &str) -> Result<()> {
    c.args(["-M", "virt", "-cpu", "cortex-a53", "-smp", "2", "-m", "256"]);
    c.args(["-drive", &format!("{drive},if=none,id=disk0")]);
    c.args(["-device", "virtio-blk-pci,drive=disk0"]);
    c.args([
        "-netdev",
        &user_net(boot),
        "-device",
        "virtio-net-pci,netdev=wan,romfile=",
    ]);
    lan_args(c, boot.lan.as_ref())?;
    if boot.interactive {
        c.args(["-serial", "mon:stdio"]);
    } else {
        c.args(["-serial", "stdio", "-monitor", "none"]);
    }
    Ok(())
}

/// The LAN NIC (`virt`): its netdev and its virtio device.
fn lan_args(c: &mut Command, lan: Option<&Lan>) -> Result<()> {
    match lan {
        Some(Lan::Tap(tap)) => {
            if !valid_ifname(tap) {
                return Err(Error::Qemu(format!(
                    "LAN tap {tap:?}: not an interface name"
                )));
            }
            c.args([
                "-netdev",
                &format!("tap,id=lan,ifname={tap},script=no,downscript=no"),
            ]);
        }
        Some(Lan::Mcast(mcast)) => {
            c.args(["-netdev", &format!("socket,id=lan,mcast={mcast}")]);
        }
        None => {}
    }
    if lan.is_some() {
        c.args(["-device", "virtio-net-pci,netdev=lan,romfile="]);
    }
    Ok(())
}

/// `raspi3b`: the machine with the image's Pi 3 DTB, the image as the SD card, a USB network
/// adapter as the WAN, the console on the second serial port.
fn raspi3b_args(c: &mut Command, boot: &Boot, drive: &str) -> Result<()> {
    if boot.lan.is_some() {
        return Err(Error::Qemu(
            "a LAN NIC needs the virt machine (BOARD=qemu-virt)".into(),
        ));
    }
    let dtb = extract(boot, "bcm2837-rpi-3-b.dtb")?;
    c.args(["-M", "raspi3b", "-dtb"]).arg(&dtb);
    c.args(["-drive", &format!("{drive},if=sd")]);
    // QEMU does not emulate the Pi 3's own Ethernet (smsc95xx/lan78xx on its USB hub):
    // a USB network adapter on the dwc2 port stands in, found and loaded by its
    // modalias like any adapter an operator plugs in (cdc_ether).
    c.args(["-netdev", &user_net(boot), "-device", "usb-net,netdev=wan"]);
    // The image's console is ttyS1, the mini UART: QEMU's second serial port.
    c.args(["-serial", "null", "-serial", "stdio", "-monitor", "none"]);
    Ok(())
}

/// What QEMU starts: U-Boot from the image (with the kernel command line where it reads it), or
/// slot a's kernel and initramfs directly.
fn boot_args(c: &mut Command, boot: &Boot, append: &str) -> Result<()> {
    match (boot.uboot, boot.machine) {
        (true, Machine::Virt) => {
            // No -kernel: U-Boot would boot that (its qfw target comes first) instead of the disk.
            fat::write_file(&boot.image, "cmdline.env", &uboot::cmdline_env(append))?;
            c.arg("-bios").arg(extract(boot, UBOOT)?);
            // A hardware watchdog, as the Pis have: init arms it, a hung guest is reset.
            c.args(["-device", "i6300esb", "-action", "watchdog=reset"]);
        }
        (true, Machine::Raspi3b) => {
            // Where the Pi firmware would load it, with its DTB and command line.
            c.arg("-kernel").arg(extract(boot, UBOOT)?);
            c.arg("-append").arg(append);
        }
        (false, _) => {
            c.arg("-no-reboot");
            c.arg("-kernel").arg(extract(boot, "a/vmlinuz")?);
            c.arg("-initrd").arg(extract(boot, "a/initrd.img")?);
            c.arg("-append").arg(append);
        }
    }
    Ok(())
}

/// A running guest whose serial console is captured.
pub struct Guest {
    child: Child,
    stdin: Option<ChildStdin>,
    console: Arc<Mutex<String>>,
    pub started: Instant,
}

impl Guest {
    /// Start QEMU; the console is copied to `log` as it arrives.
    pub fn start(boot: &Boot, log: &Path) -> Result<Guest> {
        let mut c = command(boot)?;
        let started = Instant::now();
        let mut child = c
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::Command {
                command: "qemu-system-aarch64".into(),
                message: format!("{e} (install qemu-system-arm: scripts/image-deps.sh)"),
            })?;
        let console = Arc::new(Mutex::new(String::new()));
        let mut logfile = std::fs::File::create(log).map_err(|e| Error::io(log, e))?;
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let console = console.clone();
            let mut logfile = logfile.try_clone().map_err(|e| Error::io(log, e))?;
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream);
                let mut line = Vec::new();
                while reader.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
                    let text = String::from_utf8_lossy(&line).replace('\r', "");
                    let _ = logfile.write_all(text.as_bytes());
                    if let Ok(mut c) = console.lock() {
                        c.push_str(&text);
                    }
                    line.clear();
                }
            });
        }
        let _ = logfile.flush();
        let stdin = child.stdin.take();
        Ok(Guest {
            child,
            stdin,
            console,
            started,
        })
    }

    /// Everything the console printed so far.
    pub fn console(&self) -> String {
        self.console.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// Wait until the console has printed `needle` (after byte `from`); the time it took since
    /// start, or None on timeout or QEMU exit.
    pub fn wait_for(&mut self, needle: &str, from: usize, timeout: Duration) -> Option<Duration> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self
                .console()
                .get(from..)
                .is_some_and(|c| c.contains(needle))
            {
                return Some(self.started.elapsed());
            }
            if let Ok(Some(_)) = self.child.try_wait() {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Type a line on the serial console.
    pub fn send(&mut self, line: &str) -> Result<()> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| Error::Layout("guest console closed".into()))?;
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|_| stdin.flush())
            .map_err(|e| Error::io("qemu stdin", e))
    }

    /// Whether QEMU has exited.
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Wait for QEMU to exit on its own (guest poweroff/reboot with -no-reboot).
    pub fn wait_exit(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// SIGKILL QEMU (a power cut for the guest) and reap it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A GET through a forwarded port with a Host header: status code and body, or None when
/// nothing answered. HTTP/1.0 by hand, so tests need no client library.
pub fn http_get(port: u16, host: &str, path: &str, timeout: Duration) -> Option<(u16, String)> {
    use std::io::Read;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = std::net::TcpStream::connect_timeout(&addr, timeout).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    s.set_write_timeout(Some(timeout)).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

/// Poll `http_get` until it returns 200 or `timeout` passes; the time from the guest's start.
pub fn wait_http(
    guest: &mut Guest,
    port: u16,
    host: &str,
    path: &str,
    timeout: Duration,
) -> Option<Duration> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Some((200, _)) = http_get(port, host, path, Duration::from_millis(500)) {
            return Some(guest.started.elapsed());
        }
        if let Ok(Some(_)) = guest.child.try_wait() {
            return None;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    None
}

/// Ask for the A records of `name` at 127.0.0.1:`port`, over UDP or TCP (RFC 1035 framing, built
/// by hand so tests need no resolver library). The response code and the IPv4 addresses of the
/// answer section, or None when nothing (parseable) came back.
pub fn dns_a(
    port: u16,
    name: &str,
    tcp: bool,
    timeout: Duration,
) -> Option<(u8, Vec<std::net::Ipv4Addr>)> {
    use std::io::Read;
    let mut q = vec![0xb0, 0x4a, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.trim_end_matches('.').split('.') {
        q.push(u8::try_from(label.len()).ok()?);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let resp = if tcp {
        let mut s = std::net::TcpStream::connect_timeout(&addr, timeout).ok()?;
        s.set_read_timeout(Some(timeout)).ok()?;
        let len = u16::try_from(q.len()).ok()?.to_be_bytes();
        s.write_all(&len).ok()?;
        s.write_all(&q).ok()?;
        let mut len = [0u8; 2];
        s.read_exact(&mut len).ok()?;
        let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
        s.read_exact(&mut buf).ok()?;
        buf
    } else {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").ok()?;
        s.set_read_timeout(Some(timeout)).ok()?;
        s.send_to(&q, addr).ok()?;
        let mut buf = vec![0u8; 1500];
        let n = s.recv(&mut buf).ok()?;
        buf.truncate(n);
        buf
    };
    if resp.get(..2)? != [0xb0, 0x4a] {
        return None;
    }
    let rcode = resp.get(3)? & 0x0f;
    let answers = u16::from_be_bytes([*resp.get(6)?, *resp.get(7)?]);
    // Skip the question (same length as ours), then walk the answers.
    let mut at = q.len();
    let mut addrs = Vec::new();
    for _ in 0..answers {
        // Name: a pointer (2 bytes) or labels.
        loop {
            let b = *resp.get(at)?;
            if b & 0xc0 == 0xc0 {
                at += 2;
                break;
            }
            at += 1 + usize::from(b);
            if b == 0 {
                break;
            }
        }
        let kind = u16::from_be_bytes([*resp.get(at)?, *resp.get(at + 1)?]);
        let len = usize::from(u16::from_be_bytes([*resp.get(at + 8)?, *resp.get(at + 9)?]));
        let data = resp.get(at + 10..at + 10 + len)?;
        if kind == 1 && len == 4 {
            addrs.push(std::net::Ipv4Addr::new(data[0], data[1], data[2], data[3]));
        }
        at += 10 + len;
    }
    Some((rcode, addrs))
}

/// Poll `dns_a` (UDP) until it answers or `timeout` passes.
pub fn wait_dns(port: u16, name: &str, timeout: Duration) -> Option<(u8, Vec<std::net::Ipv4Addr>)> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Some(r) = dns_a(port, name, false, Duration::from_millis(500)) {
            return Some(r);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

#[cfg(test)]
mod tests {
    #[test]
    fn tap_names_cannot_break_the_netdev_option() {
        assert!(super::valid_ifname("tap0"));
        assert!(super::valid_ifname("boma-lan.15chr"));
        for bad in [
            "",
            "tap0,script=/x",
            "a=b",
            "a b",
            "sixteen-bytes-xx",
            "a/b",
            "a:b",
        ] {
            assert!(!super::valid_ifname(bad), "{bad:?}");
        }
    }
}
