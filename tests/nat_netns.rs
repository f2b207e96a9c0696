//! The gateway's forwarding with real traffic in network namespaces: a LAN client (address from
//! boma's DHCP) reaches an HTTP server in a "WAN" namespace through boma's masquerade (the
//! server sees the gateway's WAN address); a DNS query the client sends to any address on port
//! 53 is answered by boma, one from the WAN side is refused; nothing from the WAN reaches the
//! LAN unasked; `nft list ruleset`
//! shows boma's table and only it changes between applies; a clean shutdown removes it.

mod net_support;
mod support;

use std::path::Path;

use net_support::{Netns, cable, udhcpc};
use support::Boma;

fn gateway_toml() -> &'static str {
    r#"
[entryPoints.web]
address = ":80"

[lan]
interface = "br0"
address = "10.78.0.1/24"
bridge = ["p1"]

[wan]
interface = "wan0"
mode = "static"
address = "192.168.77.1/24"

[dhcp]
state_dir = "{dir}/state"
rogue_check = false

[dns]
listen = ["0.0.0.0:5353"]
address = "auto"
upstreams = []

[nat]
masquerade = true
redirect_dns = true
"#
}

#[test]
fn lan_clients_reach_the_wan_through_nat_and_dns_is_caught() {
    let gw = Netns::new("ngw");
    let client = Netns::new("ncl");
    let wan = Netns::new("nwan");
    cable(&gw, "p1", &client, "eth0", None);
    cable(&gw, "wan0", &wan, "eth0", None);
    wan.exec(&["ip", "addr", "add", "192.168.77.2/24", "dev", "eth0"]);
    let mut server = a_wan_server_answering_the_peer_address(&wan);
    let before = somebody_elses_table(&gw);

    let boma = Boma::start_in(Some(&gw.name), gateway_toml(), None);
    let dir = boma.dir.path().to_path_buf();
    let lease = udhcpc(&client, "eth0", "walker", &dir).expect("a lease");
    assert_eq!(lease.router, "10.78.0.1");

    the_wan_server_sees_the_gateways_wan_address(&client);
    dns_to_any_address_on_port_53_is_answered_by_boma(&client);
    the_wan_gets_no_dns_and_nothing_unasked_into_the_lan(&wan, &lease.ip);
    let ruleset = the_boma_table_masquerades_redirects_dns_and_filters(&gw);
    a_restart_reapplies_the_table_and_a_shutdown_removes_it(&gw, boma, &dir, &ruleset, &before);
    let _ = server.kill();
    let _ = server.wait();
}

/// The WAN server: it answers with the address it saw the request come from.
fn a_wan_server_answering_the_peer_address(wan: &Netns) -> std::process::Child {
    wan.command("socat")
        .args([
            "TCP-LISTEN:8000,reuseaddr,fork",
            "SYSTEM:'printf \"HTTP/1.0 200 OK\\r\\n\\r\\n%s\" $SOCAT_PEERADDR'",
        ])
        .spawn()
        .expect("socat")
}

/// Somebody else's table on the gateway, which boma must leave alone; gives its listing.
fn somebody_elses_table(gw: &Netns) -> String {
    gw.exec(&["nft", "add table inet other"]);
    gw.exec(&[
        "nft",
        "add chain inet other c { type filter hook input priority 10; }",
    ]);
    gw.exec(&["nft", "list", "table", "inet", "other"])
}

/// The LAN client reaches the WAN server through the masquerade: the server sees the gateway's
/// WAN address.
fn the_wan_server_sees_the_gateways_wan_address(client: &Netns) {
    let seen = client.try_exec(&["curl", "-s", "--max-time", "5", "http://192.168.77.2:8000/"]);
    let seen = String::from_utf8_lossy(&seen.stdout).to_string();
    assert_eq!(
        seen.trim(),
        "192.168.77.1",
        "the WAN server sees the gateway's WAN address"
    );
}

/// DNS to an address that is not the gateway, on port 53: answered by boma (port 5353), as is
/// a query to the gateway itself.
fn dns_to_any_address_on_port_53_is_answered_by_boma(client: &Netns) {
    for server in ["192.0.2.53", "10.78.0.1"] {
        let out = client.exec(&[
            "kdig",
            "+short",
            "+time=2",
            &format!("@{server}"),
            "portal.village.lan",
        ]);
        assert_eq!(out.trim(), "10.78.0.1", "query to {server}");
    }
}

/// From the WAN side: a DNS query to boma is refused, and a ping to the LAN client at `lan_ip`
/// (with a route to the LAN) is dropped.
fn the_wan_gets_no_dns_and_nothing_unasked_into_the_lan(wan: &Netns, lan_ip: &str) {
    // The uplink is a private network (an ISP's router), yet boma is no resolver for it: only
    // the LAN side is `local` (the default allowed_networks).
    let from_wan = wan.exec(&[
        "kdig",
        "+time=2",
        "-p",
        "5353",
        "@192.168.77.1",
        "portal.village.lan",
    ]);
    assert!(
        from_wan.contains("status: REFUSED"),
        "WAN query answered:\n{from_wan}"
    );
    // Nothing from the WAN reaches the LAN unasked.
    wan.exec(&["ip", "route", "add", "10.78.0.0/24", "via", "192.168.77.1"]);
    let unasked = wan.try_exec(&["ping", "-c", "1", "-W", "1", lan_ip]);
    assert!(!unasked.status.success(), "WAN → LAN must be dropped");
}

/// boma's table holds the masquerade, the DNS redirect and the stateful filter; gives its
/// listing.
fn the_boma_table_masquerades_redirects_dns_and_filters(gw: &Netns) -> String {
    let ruleset = gw.exec(&["nft", "list", "table", "inet", "boma"]);
    for want in [
        "masquerade",
        "redirect to :5353",
        "ct state established,related accept",
    ] {
        assert!(ruleset.contains(want), "missing `{want}` in\n{ruleset}");
    }
    ruleset
}

/// A restart (on the first boma's `dir`) re-applies the same table and touches nothing else; a
/// clean shutdown removes boma's table only.
fn a_restart_reapplies_the_table_and_a_shutdown_removes_it(
    gw: &Netns,
    boma: Boma,
    dir: &Path,
    ruleset: &str,
    before: &str,
) {
    let toml = gateway_toml().replace("{dir}", &dir.display().to_string());
    drop(boma);
    let boma = Boma::start_in(Some(&gw.name), &toml, None);
    assert_eq!(gw.exec(&["nft", "list", "table", "inet", "boma"]), ruleset);
    assert_eq!(gw.exec(&["nft", "list", "table", "inet", "other"]), before);
    // A clean shutdown removes boma's table only.
    let status = boma.terminate();
    assert!(status.success(), "{status:?}");
    let left = gw.exec(&["nft", "list", "ruleset"]);
    assert!(
        !left.contains("table inet boma") && left.contains("table inet other"),
        "{left}"
    );
}

/// Without `upstreams`, boma forwards to the host's resolvers and follows resolv.conf as the
/// WAN's DHCP client rewrites it (here: `ip netns exec`'s per-namespace resolv.conf, first
/// naming nobody, then a dnsmasq stub in the namespace).
#[test]
fn forwarding_follows_the_hosts_resolv_conf() {
    let gw = Netns::new("rgw");
    let etc = std::path::PathBuf::from(format!("/etc/netns/{}", gw.name));
    std::fs::create_dir_all(&etc).expect("mkdir /etc/netns/NS");
    struct Cleanup(std::path::PathBuf);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _cleanup = Cleanup(etc.clone());
    let resolv = etc.join("resolv.conf");
    std::fs::write(&resolv, "nameserver 127.0.0.54\n").expect("resolv.conf");
    let mut stub = gw
        .command("dnsmasq")
        .args([
            "-d",
            "-C",
            "/dev/null",
            "-p",
            "53",
            "--listen-address=127.0.0.53",
        ])
        .args([
            "--bind-interfaces",
            "--no-resolv",
            "--address=/wan.test/192.0.2.7",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("dnsmasq stub");
    // 192.0.2.0/24 is a documentation range, which rebind protection drops unless allowed.
    let toml = "[dns]\nlisten = [\"127.0.0.1:5353\"]\naddress = \"127.0.0.1\"\n\
                rebind_allow = [\"wan.test\"]\n";
    let boma = Boma::start_in(Some(&gw.name), toml, None);
    let ask = || {
        let out = gw.try_exec(&[
            "kdig",
            "+short",
            "+time=1",
            "+retry=0",
            "-p",
            "5353",
            "@127.0.0.1",
            "host.wan.test",
        ]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(ask(), "", "nobody at 127.0.0.54: no answer yet");
    // In place: `ip netns exec` bind-mounted this very file over /etc/resolv.conf.
    std::fs::write(&resolv, "nameserver 127.0.0.53\n").expect("rewrite resolv.conf");
    let got = net_support::wait_for(std::time::Duration::from_secs(10), || {
        let a = ask();
        (a == "192.0.2.7").then_some(a)
    });
    assert!(
        got.is_some(),
        "boma did not pick up the new resolver; stderr:\n{}",
        boma.stderr()
    );
    let _ = stub.kill();
    let _ = stub.wait();
}
