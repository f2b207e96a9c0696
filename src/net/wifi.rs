//! `[wifi]` on the air: Debian's `hostapd` as the LAN's access point, or `wpa_supplicant` as a
//! client whose network is the WAN, each run and restarted by boma ([`super::supervise`]) with a
//! configuration file boma writes from `boma.toml`. boma has no 802.11 code of its own: these
//! two are what every Linux access point and client runs, and they own the radio.
//!
//! WPA2-Personal (CCMP). The key is derived here from the passphrase and SSID (PBKDF2-SHA1, as
//! IEEE 802.11i defines the PSK), so the passphrase itself is never written anywhere, and the
//! SSID goes in hex, so no byte of either can break the file's syntax. The files are mode 0600
//! under `run_dir` (a tmpfs on the image). Nothing here logs them.
//!
//! An access point on a bridge member is added to the bridge by hostapd (`bridge=`), which
//! must switch the radio to AP mode first: the kernel refuses a station-mode radio as a bridge
//! port, so `setup` leaves that member out of the bridge it builds.

use std::fmt::Write as _;
use std::num::NonZeroU32;
use std::path::PathBuf;

use tokio::sync::watch;
use tokio::task::JoinSet;

use super::supervise;
use crate::config::{CHANNELS_5GHZ, Config, Secret, Wifi, WifiMode};

/// The 256-bit PSK of a WPA2-Personal network: the 64 hex digits when that is what
/// `passphrase` is, else PBKDF2-HMAC-SHA1 of it with the SSID as salt, 4096 rounds.
pub fn psk(passphrase: &Secret, ssid: &str) -> [u8; 32] {
    let p = passphrase.expose();
    let mut out = [0u8; 32];
    if p.len() == 64 && p.bytes().all(|b| b.is_ascii_hexdigit()) {
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&p[2 * i..2 * i + 2], 16).unwrap_or(0);
        }
        return out;
    }
    let rounds = NonZeroU32::new(4096).unwrap_or(NonZeroU32::MIN);
    ring::pbkdf2::derive(
        ring::pbkdf2::PBKDF2_HMAC_SHA1,
        rounds,
        ssid.as_bytes(),
        p.as_bytes(),
        &mut out,
    );
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// hostapd's configuration for an access point on `wifi.interface`, joining `bridge` when the
/// interface is a member of the LAN bridge.
pub fn hostapd_conf(wifi: &Wifi, bridge: Option<&str>) -> String {
    let channel = wifi.channel();
    let five = CHANNELS_5GHZ.contains(&channel);
    let mut c = String::new();
    let _ = writeln!(
        c,
        "# Written by boma from boma.toml [wifi]; rewritten at every start."
    );
    let _ = writeln!(c, "interface={}", wifi.interface);
    let _ = writeln!(c, "driver=nl80211");
    if let Some(bridge) = bridge {
        let _ = writeln!(c, "bridge={bridge}");
    }
    let _ = writeln!(
        c,
        "ctrl_interface={}",
        wifi.run_dir.join("hostapd").display()
    );
    let _ = writeln!(c, "ssid2={}", hex(wifi.ssid.as_bytes()));
    let _ = writeln!(c, "utf8_ssid=1");
    let _ = writeln!(c, "country_code={}", wifi.country);
    let _ = writeln!(c, "ieee80211d=1");
    let _ = writeln!(c, "hw_mode={}", if five { "a" } else { "g" });
    let _ = writeln!(c, "channel={channel}");
    let _ = writeln!(c, "wmm_enabled=1");
    let _ = writeln!(c, "ieee80211n=1");
    if five {
        let _ = writeln!(c, "ieee80211ac=1");
    }
    // Clients that vanish without a goodbye (out of range, power cut) are dropped after 5 min.
    let _ = writeln!(c, "ap_max_inactivity=300");
    if let Some(p) = &wifi.passphrase {
        let _ = writeln!(c, "wpa=2");
        let _ = writeln!(c, "wpa_key_mgmt=WPA-PSK");
        let _ = writeln!(c, "rsn_pairwise=CCMP");
        let _ = writeln!(c, "wpa_psk={}", hex(&psk(p, &wifi.ssid)));
    }
    c
}

/// wpa_supplicant's configuration for a client of `wifi.ssid`.
pub fn wpa_supplicant_conf(wifi: &Wifi) -> String {
    let mut c = String::new();
    let _ = writeln!(
        c,
        "# Written by boma from boma.toml [wifi]; rewritten at every start."
    );
    let _ = writeln!(
        c,
        "ctrl_interface={}",
        wifi.run_dir.join("wpa_supplicant").display()
    );
    let _ = writeln!(c, "country={}", wifi.country);
    let _ = writeln!(c, "ap_scan=1");
    // No Wi-Fi Direct device beside the client.
    let _ = writeln!(c, "p2p_disabled=1");
    let _ = writeln!(c, "network={{");
    let _ = writeln!(c, "\tssid={}", hex(wifi.ssid.as_bytes()));
    // Hidden networks are found too.
    let _ = writeln!(c, "\tscan_ssid=1");
    match &wifi.passphrase {
        Some(p) => {
            let _ = writeln!(c, "\tkey_mgmt=WPA-PSK");
            let _ = writeln!(c, "\tproto=RSN");
            let _ = writeln!(c, "\tpairwise=CCMP");
            let _ = writeln!(c, "\tpsk={}", hex(&psk(p, &wifi.ssid)));
        }
        None => {
            let _ = writeln!(c, "\tkey_mgmt=NONE");
        }
    }
    let _ = writeln!(c, "}}");
    c
}

/// The access point's interface when it is a member of the LAN bridge: hostapd adds it.
pub fn ap_bridge_member(cfg: &Config) -> Option<&str> {
    let wifi = cfg.wifi.as_ref().filter(|w| w.mode == WifiMode::Ap)?;
    let lan = cfg.lan.as_ref()?;
    lan.bridge
        .contains(&wifi.interface)
        .then_some(wifi.interface.as_str())
}

/// Run the `[wifi]` daemon, if any, until `stop`.
pub fn spawn(cfg: &Config, tasks: &mut JoinSet<()>, stop: watch::Receiver<bool>) {
    let Some(wifi) = &cfg.wifi else { return };
    let (name, program, file, text) = match wifi.mode {
        WifiMode::Ap => {
            let bridge = ap_bridge_member(cfg).and(cfg.lan.as_ref().map(|l| l.interface.as_str()));
            let text = hostapd_conf(wifi, bridge);
            ("hostapd", &wifi.hostapd, "hostapd.conf", text)
        }
        WifiMode::Client => {
            let text = wpa_supplicant_conf(wifi);
            let file = "wpa_supplicant.conf";
            ("wpa_supplicant", &wifi.wpa_supplicant, file, text)
        }
    };
    let path: PathBuf = wifi.run_dir.join(file);
    let args = match wifi.mode {
        WifiMode::Ap => vec![path.clone().into()],
        WifiMode::Client => vec![
            "-D".into(),
            "nl80211".into(),
            "-i".into(),
            wifi.interface.clone().into(),
            "-c".into(),
            path.clone().into(),
        ],
    };
    tracing::info!(mode = ?wifi.mode, interface = %wifi.interface, ssid = %wifi.ssid, "net: Wi-Fi configured");
    let daemon = supervise::Daemon {
        name,
        program: program.clone(),
        args,
        interface: wifi.interface.clone(),
        show_output: true,
        file: Some((path, text)),
    };
    supervise::spawn(daemon, tasks, stop);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wifi(src: &str) -> Config {
        crate::config::parse(src, std::path::Path::new("boma.toml")).expect("config")
    }

    #[test]
    fn the_psk_is_the_one_ieee_802_11i_defines() {
        // IEEE 802.11i-2004, H.4.2: passphrase "password", SSID "IEEE".
        let got = psk(&Secret::from("password"), "IEEE");
        assert_eq!(
            hex(&got),
            "f42c6fc52df0ebef9ebb4b90b38a5f902e83fe1b135a70e23aed762e9710a12e"
        );
        // Test vector 2: "ThisIsAPassword", SSID "ThisIsASSID".
        let got = psk(&Secret::from("ThisIsAPassword"), "ThisIsASSID");
        assert_eq!(
            hex(&got),
            "0dc0d6eb90555ed6419756b9a15ec3e3209b63df707dd508d14581f8982721af"
        );
        // 64 hex digits are the PSK itself.
        let raw = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF";
        assert_eq!(hex(&psk(&Secret::from(raw), "x")), raw.to_lowercase());
    }

    const AP: &str = r#"[lan]
interface = "br-lan"
address = "10.1.0.1/24"
bridge = ["eth0", "wlan0"]
[wifi]
mode = "ap"
ssid = "kijiji \"net\""
passphrase = "village-secret"
country = "KE"
"#;

    #[test]
    fn an_access_point_on_the_bridge() {
        let cfg = wifi(AP);
        assert_eq!(ap_bridge_member(&cfg), Some("wlan0"));
        let w = cfg.wifi.as_ref().expect("wifi");
        let conf = hostapd_conf(w, Some("br-lan"));
        for line in [
            "interface=wlan0\n",
            "bridge=br-lan\n",
            "ctrl_interface=/run/boma/hostapd\n",
            // `kijiji "net"` in hex: quotes cannot end the value.
            "ssid2=6b696a696a6920226e657422\n",
            "country_code=KE\n",
            "hw_mode=g\nchannel=6\n",
            "wpa=2\n",
            "rsn_pairwise=CCMP\n",
        ] {
            assert!(conf.contains(line), "{line:?} missing from\n{conf}");
        }
        let key = hex(&psk(&Secret::from("village-secret"), "kijiji \"net\""));
        assert!(conf.contains(&format!("wpa_psk={key}\n")), "{conf}");
        assert!(!conf.contains("village-secret"), "{conf}");
        // 5 GHz, and an open network without any key line.
        let five = wifi(
            &AP.replace("passphrase = \"village-secret\"\n", "")
                .replace("country = \"KE\"", "country = \"KE\"\nchannel = 36"),
        );
        let conf = hostapd_conf(five.wifi.as_ref().expect("wifi"), None);
        assert!(conf.contains("hw_mode=a\nchannel=36\n"), "{conf}");
        assert!(conf.contains("ieee80211ac=1\n"), "{conf}");
        assert!(!conf.contains("wpa") && !conf.contains("bridge="), "{conf}");
    }

    #[test]
    fn a_client_of_the_uplink() {
        let cfg = wifi(
            "[wan]\ninterface = \"wlan0\"\n[wifi]\nmode = \"client\"\nssid = \"up\"\npassphrase = \"uplink-secret\"\ncountry = \"ZA\"\n",
        );
        assert_eq!(ap_bridge_member(&cfg), None);
        let conf = wpa_supplicant_conf(cfg.wifi.as_ref().expect("wifi"));
        let key = hex(&psk(&Secret::from("uplink-secret"), "up"));
        assert!(conf.contains("country=ZA\n"), "{conf}");
        assert!(conf.contains("\tssid=7570\n"), "{conf}");
        assert!(conf.contains(&format!("\tpsk={key}\n")), "{conf}");
        assert!(!conf.contains("uplink-secret"), "{conf}");
    }
}
