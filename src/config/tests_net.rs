//! The router sections: defaults from the documented example, the roles, and every overlap
//! `boma check` reports with its position.

use std::path::Path;

use super::*;

fn problems(src: &str) -> Vec<String> {
    match parse(src, Path::new("boma.toml")) {
        Ok(_) => panic!("expected problems"),
        Err(e) => e
            .iter()
            .map(|e| format!("{}:{}: {}", e.line, e.col, e.message))
            .collect(),
    }
}

#[test]
fn the_documented_gateway_and_its_defaults() {
    let c = parse(include_str!("../../docs/boma.example.toml"), Path::new("x")).expect("parses");
    let lan = c.lan.expect("[lan]");
    assert_eq!(lan.address.to_string(), "192.168.1.1/24");
    assert_eq!(
        lan.address.mask(),
        std::net::Ipv4Addr::new(255, 255, 255, 0)
    );
    assert_eq!(
        lan.address.broadcast(),
        std::net::Ipv4Addr::new(192, 168, 1, 255)
    );
    let dhcp = c.dhcp.expect("[dhcp]");
    assert_eq!(dhcp, Dhcp::default());
    assert_eq!(
        dhcp.pool(&lan.address),
        ([192, 168, 1, 100].into(), [192, 168, 1, 250].into())
    );
    assert_eq!(c.nat, Some(Nat::default()));
    assert_eq!(c.wan.map(|w| w.mode), Some(WanMode::Dhcp));
    let small: Ipv4Cidr = "10.0.0.1/29".parse().expect("cidr");
    assert_eq!(
        Dhcp::default().pool(&small),
        ([10, 0, 0, 1].into(), [10, 0, 0, 6].into())
    );
}

#[test]
fn overlaps_and_bad_values_are_positioned() {
    let src = r#"[lan]
interface = "br-lan"
address = "10.1.0.1/24"
bridge = ["br-lan"]
[wan]
interface = "eth1"
mode = "static"
address = "10.1.0.9/16"
gateway = "192.0.2.1"
[dhcp]
range = ["10.1.0.10", "10.2.0.20"]
lease_time = "1m"
[[dhcp.hosts]]
mac = "b8:27:eb:00:00:01"
address = "10.1.0.1"
[[dhcp.hosts]]
mac = "zz"
address = "10.1.0.1"
name = "bad name"
[nat]
redirect_http = true
"#;
    let found = problems(src);
    let expect = [
        "4:11: `br-lan` is not a member interface name",
        "8:11: 10.1.0.9/16 overlaps the LAN",
        "9:11: `192.0.2.1` is not another address",
        "11:23: 10.2.0.20 is outside the LAN subnet",
        "12:14: `lease_time` must be at least 2m",
        "15:11: 10.1.0.1 is the gateway's own address",
        "17:7: `zz` is not a MAC address",
        "18:11: 10.1.0.1 is the gateway's own address",
        "18:11: 10.1.0.1 is already another host's address",
        "19:8: `bad name` is not a host name",
        "`redirect_dns` sends queries to boma's DNS",
        "21:17: `redirect_http` goes to entry point `web`",
    ];
    for e in expect {
        assert!(
            found.iter().any(|f| f.starts_with(e) || f.contains(e)),
            "missing {e}\n{found:#?}"
        );
    }
}

#[test]
fn dhcp_and_nat_need_a_lan_and_auto_stands_alone() {
    let found = problems("[dhcp]\n[nat]\nmasquerade = false\nredirect_dns = false\n");
    assert!(
        found
            .iter()
            .any(|f| f.starts_with("1:2: [dhcp] needs a [lan]")),
        "{found:#?}"
    );
    assert!(
        found
            .iter()
            .any(|f| f.starts_with("2:2: [nat] needs a [lan]")),
        "{found:#?}"
    );
    let c = parse("[dns]\naddress = \"auto\"\n", Path::new("x")).expect("auto alone");
    assert!(c.dns.expect("dns").auto_address());
    let found = problems("[dns]\naddress = [\"auto\", \"10.0.0.1\"]\n");
    assert!(found[0].contains("`auto` stands alone"), "{found:#?}");
    let found = problems("[lan]\ninterface = \"eth0\"\naddress = \"10.0.0.1/33\"\n");
    assert!(
        found[0].starts_with("3:11:") && found[0].contains("prefix"),
        "{found:#?}"
    );
}

const AP_ON_BRIDGE: &str = r#"[lan]
interface = "br-lan"
address = "10.1.0.1/24"
bridge = ["eth0", "wlan0"]
[wifi]
mode = "ap"
ssid = "village"
passphrase = "correct horse battery"
country = "ZA"
"#;

#[test]
fn an_access_point_on_the_lan_bridge_and_its_defaults() {
    let c = parse(AP_ON_BRIDGE, Path::new("x")).expect("parses");
    let w = c.wifi.clone().expect("[wifi]");
    assert_eq!(
        (
            w.mode,
            w.interface.as_str(),
            w.channel(),
            w.hostapd.as_str()
        ),
        (WifiMode::Ap, "wlan0", DEFAULT_CHANNEL, "hostapd")
    );
    assert_eq!(w.run_dir, Path::new("/run/boma"));
    assert_eq!(
        w.passphrase.as_ref().map(Secret::expose),
        Some("correct horse battery")
    );
    assert!(c.warnings().is_empty(), "{:?}", c.warnings());
    // The passphrase is never shown: not by Debug, not by serialization (the API's view).
    let shown = format!("{c:?}{}", serde_json::to_string(&c).expect("json"));
    assert!(!shown.contains("horse"), "{shown}");
    assert!(shown.contains("<secret>"), "{shown}");
    // An open access point is valid, and warned about.
    let open = AP_ON_BRIDGE.replace("passphrase = \"correct horse battery\"\n", "");
    let c = parse(&open, Path::new("x")).expect("open AP parses");
    assert!(
        c.warnings()[0].contains("`village` is open"),
        "{:?}",
        c.warnings()
    );
}

#[test]
fn wifi_problems_are_positioned_and_never_quote_the_passphrase() {
    let src = r#"[lan]
interface = "eth0"
address = "10.1.0.1/24"
[wifi]
mode = "ap"
interface = "wlan1"
ssid = "a-name-that-is-far-longer-than-32-bytes"
passphrase = "short"
country = "za"
channel = 100
"#;
    let found = problems(src);
    let expect = [
        "6:13: an access point serves the LAN: `wlan1` must be [lan] interface",
        "7:8: the SSID must be 1 to 32 bytes",
        "8:14: the passphrase must be 8 to 63 printable ASCII characters",
        "9:11: `za` is not a country code",
        "10:11: channel 100 needs radar detection",
    ];
    for e in expect {
        assert!(
            found.iter().any(|f| f.starts_with(e)),
            "missing {e}\n{found:#?}"
        );
    }
    assert!(!found.iter().any(|f| f.contains("short")), "{found:#?}");
    assert_eq!(found.len(), expect.len(), "{found:#?}");
    let found = problems(&src.replace("channel = 100", "channel = 14"));
    assert!(
        found
            .iter()
            .any(|f| f.contains("channel 14 is not 1 to 13")),
        "{found:#?}"
    );
    // 64 hex digits are a PSK; 64 other characters are not.
    assert_eq!(passphrase_problem(&"ab".repeat(32)), None);
    assert!(passphrase_problem(&"xy".repeat(32)).is_some());
    assert!(passphrase_problem("tab\there!").is_some());
    assert_eq!(passphrase_problem("eight ch"), None);
}

#[test]
fn a_wifi_client_is_the_wan() {
    let src = r#"[wan]
interface = "wlan0"
[wifi]
mode = "client"
ssid = "uplink"
country = "KE"
"#;
    let c = parse(src, Path::new("x")).expect("client parses");
    assert_eq!(c.wifi.map(|w| w.mode), Some(WifiMode::Client));
    let found = problems(
        &src.replace("wlan0", "eth1")
            .replace("\"KE\"", "\"KE\"\nchannel = 6"),
    );
    let expect = [
        "3:2: a client is the uplink: `wlan0` must be [wan] interface",
        "7:1: `channel` is for mode = \"ap\"",
    ];
    for e in expect {
        assert!(
            found.iter().any(|f| f.starts_with(e)),
            "missing {e}\n{found:#?}"
        );
    }
}
