//! `[wifi]`: the radio as an access point on the LAN (hostapd) or as a client whose network is
//! the WAN (wpa_supplicant), and `boma check`'s rules for it: SSID, passphrase, country and
//! channel as the two daemons and the regulatory rules accept them, and the interface's place
//! in `[lan]` or `[wan]`.
//!
//! The passphrase is a [`Secret`]: never serialized, never printed by `Debug`, never quoted in a
//! problem. This module only describes and checks; `net::wifi` writes the daemons' files and
//! runs them.

use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize};

use super::net::is_ifname;
use super::validate::Check;

/// What the radio does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WifiMode {
    /// An access point (hostapd) on the LAN: `interface` is `[lan] interface` or one of its
    /// bridge members.
    Ap,
    /// A client (wpa_supplicant) of another network, used as the uplink: `interface` is
    /// `[wan] interface`.
    Client,
}

/// A value that must never reach a log, the API or an error message.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The value itself, for the daemon's configuration file only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<secret>")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret(s.to_string())
    }
}

/// `[wifi]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Wifi {
    pub mode: WifiMode,
    /// The wireless interface (default `wlan0`, the Pi's on-board radio).
    #[serde(default = "default_interface")]
    pub interface: String,
    /// The network's name, 1 to 32 bytes.
    pub ssid: String,
    /// WPA2 passphrase: 8 to 63 printable ASCII characters, or the 64 hex digits of the PSK.
    /// Without it the access point is open (`boma check` warns) or the client joins an open
    /// network.
    #[serde(default, skip_serializing)]
    pub passphrase: Option<Secret>,
    /// ISO 3166-1 country code (`ZA`, `KE`, `DE`): which channels and powers the radio may use.
    pub country: String,
    /// Access point only: the channel (default 6). 1 to 13 (2.4 GHz), or 36, 40, 44, 48, 149,
    /// 153, 157, 161, 165 (5 GHz without radar detection, Pi 3 B+ and Pi 4 only).
    pub channel: Option<u8>,
    /// The programs (found on `PATH` unless a path is given).
    #[serde(default = "default_hostapd")]
    pub hostapd: String,
    #[serde(default = "default_wpa_supplicant")]
    pub wpa_supplicant: String,
    /// Where boma writes the daemon's configuration (mode 0600) and its control socket goes.
    #[serde(default = "default_run_dir")]
    pub run_dir: PathBuf,
}

/// The access point's channel when none is given.
pub const DEFAULT_CHANNEL: u8 = 6;

/// 5 GHz channels an access point may use without radar detection (DFS), which boma does not
/// configure: UNII-1 and UNII-3.
pub const CHANNELS_5GHZ: [u8; 9] = [36, 40, 44, 48, 149, 153, 157, 161, 165];

fn default_interface() -> String {
    "wlan0".into()
}

fn default_hostapd() -> String {
    "hostapd".into()
}

fn default_wpa_supplicant() -> String {
    "wpa_supplicant".into()
}

fn default_run_dir() -> PathBuf {
    PathBuf::from("/run/boma")
}

impl Wifi {
    /// The access point's channel.
    pub fn channel(&self) -> u8 {
        self.channel.unwrap_or(DEFAULT_CHANNEL)
    }
}

/// Why `p` is not a passphrase hostapd and wpa_supplicant accept (the value is never quoted).
pub fn passphrase_problem(p: &str) -> Option<&'static str> {
    let ascii = (8..=63).contains(&p.len()) && p.bytes().all(|b| (0x20..=0x7e).contains(&b));
    let psk = p.len() == 64 && p.bytes().all(|b| b.is_ascii_hexdigit());
    (!ascii && !psk).then_some(
        "the passphrase must be 8 to 63 printable ASCII characters, or 64 hex digits (a PSK)",
    )
}

impl Check<'_> {
    /// `[wifi]` alone, and its interface's place in `[lan]` or `[wan]`.
    pub(super) fn wifi(&mut self, c: &super::Config) {
        let Some(wifi) = &c.wifi else { return };
        if !is_ifname(&wifi.interface) {
            let message = format!("`{}` is not an interface name", wifi.interface);
            self.value(&["wifi", "interface"], message);
        }
        if !(1..=32).contains(&wifi.ssid.len()) {
            self.value(&["wifi", "ssid"], "the SSID must be 1 to 32 bytes");
        }
        if let Some(why) = wifi
            .passphrase
            .as_ref()
            .and_then(|p| passphrase_problem(&p.0))
        {
            self.value(&["wifi", "passphrase"], why);
        }
        let country = wifi.country.as_bytes();
        if country.len() != 2 || !country.iter().all(u8::is_ascii_uppercase) || country == b"00" {
            let message = format!(
                "`{}` is not a country code: two capital letters (ISO 3166-1, like \"ZA\")",
                wifi.country
            );
            self.value(&["wifi", "country"], message);
        }
        let programs = [
            ("hostapd", &wifi.hostapd),
            ("wpa_supplicant", &wifi.wpa_supplicant),
        ];
        for (key, program) in programs {
            if program.is_empty() || program.contains(char::is_whitespace) {
                self.value(&["wifi", key], "expected a program name or path");
            }
        }
        match wifi.mode {
            WifiMode::Ap => self.wifi_ap(wifi, c.lan.as_ref()),
            WifiMode::Client => self.wifi_client(wifi, c.wan.as_ref()),
        }
    }

    fn wifi_ap(&mut self, wifi: &Wifi, lan: Option<&super::Lan>) {
        if let Some(ch) = wifi.channel
            && !(1..=13).contains(&ch)
            && !CHANNELS_5GHZ.contains(&ch)
        {
            let message = if (52..=144).contains(&ch) {
                format!("channel {ch} needs radar detection (DFS), which boma does not configure")
            } else {
                format!("channel {ch} is not 1 to 13 or a 5 GHz channel like 36")
            };
            self.value(&["wifi", "channel"], message);
        }
        let on_lan = lan
            .is_some_and(|l| l.interface == wifi.interface || l.bridge.contains(&wifi.interface));
        if !on_lan {
            let message = format!(
                "an access point serves the LAN: `{}` must be [lan] interface or one of its \
                 bridge members",
                wifi.interface
            );
            self.value(&["wifi", "interface"], message);
        }
    }

    fn wifi_client(&mut self, wifi: &Wifi, wan: Option<&super::Wan>) {
        if wifi.channel.is_some() {
            let message = "`channel` is for mode = \"ap\"; a client follows its network";
            self.key(&["wifi", "channel"], message);
        }
        if wan.is_none_or(|w| w.interface != wifi.interface) {
            let message = format!(
                "a client is the uplink: `{}` must be [wan] interface",
                wifi.interface
            );
            self.value(&["wifi", "interface"], message);
        }
    }
}
