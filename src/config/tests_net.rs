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
