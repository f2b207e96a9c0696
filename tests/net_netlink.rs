//! `boma::net` against the real kernel, in network namespaces made for each test (see
//! tests/netlink_support): the LAN bridge and WAN set-up over rtnetlink, the address watch, and
//! boma's nftables table: what `nft` lists back, that other tables stay byte-identical, that a
//! refused batch names its message and changes nothing, and real packets through the redirect,
//! the masquerade and the forward filter. Needs root, `ip`, `nft` and `socat`.

mod netlink_support;

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use boma::net::NetError;
use boma::net::links::{self, IfAddr, LanSpec};
use boma::net::nft::{self, NatSpec, NftError};
use netlink_support::{Netns, block_on, must, phase, retry};
use tokio::sync::watch;

const LAN_ADDR: Ipv4Addr = Ipv4Addr::new(10, 99, 1, 1);

fn lan(interface: &str, bridge: &[&str]) -> LanSpec {
    LanSpec {
        interface: interface.into(),
        address: LAN_ADDR,
        prefix: 24,
        bridged: !bridge.is_empty(),
        bridge: bridge.iter().map(|s| s.to_string()).collect(),
    }
}

/// The flags of `ip -o link show` (`<BROADCAST,MULTICAST,UP,LOWER_UP>`) contain UP.
fn is_up(ns: &Netns, dev: &str) -> bool {
    let line = ns.ip(&format!("-o link show dev {dev}"));
    let flags = line.split(['<', '>']).nth(1).unwrap_or_default();
    flags.split(',').any(|f| f == "UP")
}

#[test]
fn lan_bridge_with_two_members_is_set_up_idempotently() {
    if phase().is_some() {
        return block_on(async {
            let spec = lan("br-lan", &["m1", "m2"]);
            let first = links::setup_lan(&spec).await.expect("first set-up");
            let again = links::setup_lan(&spec).await.expect("second set-up");
            assert_eq!(first, again);
            assert_eq!(links::interface_index("br-lan").await.unwrap(), Some(first));
            assert_eq!(links::interface_index("nope0").await.unwrap(), None);
            let mine = IfAddr {
                index: first,
                name: "br-lan".into(),
                addr: LAN_ADDR,
                prefix: 24,
            };
            assert!(links::ipv4_addresses().await.unwrap().contains(&mine));

            // A missing member is named, and nothing is created before it is found missing.
            let err = links::setup_lan(&lan("br-x", &["m1", "nope0"]))
                .await
                .unwrap_err();
            assert!(
                matches!(&err, NetError::NoSuchInterface(n) if n == "nope0"),
                "{err}"
            );
            assert!(err.to_string().contains("nope0"));
            assert_eq!(links::interface_index("br-x").await.unwrap(), None);
            let err = links::setup_lan(&lan("nope0", &[])).await.unwrap_err();
            assert!(
                matches!(&err, NetError::NoSuchInterface(n) if n == "nope0"),
                "{err}"
            );
            // A bridge whose only member joins later (an access point, added by hostapd).
            let only_ap = LanSpec {
                bridged: true,
                ..lan("br-ap", &[])
            };
            let index = links::setup_lan(&only_ap).await.expect("empty bridge");
            assert_eq!(links::interface_index("br-ap").await.unwrap(), Some(index));
            let err = links::setup_lan(&lan("m2p", &["m1p"])).await.unwrap_err();
            assert!(
                matches!(&err, NetError::NotABridge(n) if n == "m2p"),
                "{err}"
            );
        });
    }
    let ns = Netns::new();
    ns.ip("link add m1 type veth peer name m1p");
    ns.ip("link add m2 type veth peer name m2p");
    ns.child("lan_bridge_with_two_members_is_set_up_idempotently", "run");
    let members = ns.ip("-o link show master br-lan");
    assert!(
        members.contains(" m1@m1p:") && members.contains(" m2@m2p:"),
        "{members}"
    );
    let addrs = ns.ip("-o -4 addr show dev br-lan");
    assert_eq!(addrs.matches("inet 10.99.1.1/24 ").count(), 1, "{addrs}");
    assert!(is_up(&ns, "br-lan") && is_up(&ns, "m1") && is_up(&ns, "m2"));
    let bridges = ns.ip("-o link show type bridge");
    assert!(
        bridges.contains("br-lan") && bridges.contains("br-ap"),
        "{bridges}"
    );
}

#[test]
fn static_wan_gets_address_and_a_replaced_default_route() {
    if phase().is_some() {
        return block_on(async {
            let addr = Ipv4Addr::new(198, 51, 100, 1);
            let gw = |last| Some(Ipv4Addr::new(198, 51, 100, last));
            links::setup_wan_static("w0", addr, 24, gw(254))
                .await
                .expect("set-up");
            links::setup_wan_static("w0", addr, 24, gw(254))
                .await
                .expect("again");
            links::setup_wan_static("w0", addr, 24, gw(253))
                .await
                .expect("new gateway");
            links::set_ipv4_forwarding(true).expect("forwarding");
            let err = links::setup_wan_static("nope0", addr, 24, None)
                .await
                .unwrap_err();
            assert!(
                matches!(&err, NetError::NoSuchInterface(n) if n == "nope0"),
                "{err}"
            );
        });
    }
    let ns = Netns::new();
    ns.ip("link add w0 type veth peer name w1");
    ns.ip("link set w1 up");
    // A new namespace may start with forwarding on (it copies the host's setting): turn it off
    // so that the child's set_ipv4_forwarding(true) is what turns it on.
    ns.exec(&["sh", "-c", "echo 0 > /proc/sys/net/ipv4/ip_forward"]);
    ns.child(
        "static_wan_gets_address_and_a_replaced_default_route",
        "run",
    );
    let routes = ns.ip("-4 route show default");
    assert_eq!(routes.lines().count(), 1, "{routes}");
    assert!(
        routes.starts_with("default via 198.51.100.253 dev w0"),
        "{routes}"
    );
    let addrs = ns.ip("-o -4 addr show dev w0");
    assert_eq!(addrs.matches("inet 198.51.100.1/24 ").count(), 1, "{addrs}");
    assert!(is_up(&ns, "w0"));
    let fwd = ns.exec(&["cat", "/proc/sys/net/ipv4/ip_forward"]);
    assert_eq!(fwd.trim(), "1");
}

async fn wait_for(
    rx: &mut watch::Receiver<Arc<Vec<IfAddr>>>,
    what: &str,
    ok: impl Fn(&[IfAddr]) -> bool,
) {
    loop {
        if ok(&rx.borrow_and_update()) {
            return;
        }
        let changed = tokio::time::timeout(Duration::from_secs(10), rx.changed()).await;
        assert!(
            changed.is_ok(),
            "no published list {what} within 10 s: {:?}",
            rx.borrow()
        );
        changed.unwrap().expect("watch sender alive");
    }
}

#[test]
fn address_watch_publishes_added_and_removed_addresses() {
    if phase().is_some() {
        return block_on(async {
            let (tx, mut rx) = watch::channel(Arc::new(Vec::new()));
            let (stop_tx, stop_rx) = watch::channel(false);
            let task = tokio::spawn(links::watch_addresses(tx, stop_rx));
            let has = |l: &[IfAddr], name: &str, addr: Ipv4Addr| {
                l.iter().any(|a| a.name == name && a.addr == addr)
            };
            wait_for(&mut rx, "with lo", |l| has(l, "lo", Ipv4Addr::LOCALHOST)).await;
            let v0 = LanSpec {
                interface: "v0".into(),
                address: Ipv4Addr::new(10, 99, 2, 1),
                prefix: 24,
                bridged: false,
                bridge: vec![],
            };
            links::setup_lan(&v0).await.expect("address added");
            wait_for(&mut rx, "with v0", |l| has(l, "v0", v0.address)).await;
            must(&["ip", "addr", "del", "10.99.2.1/24", "dev", "v0"]);
            wait_for(&mut rx, "without v0", |l| !has(l, "v0", v0.address)).await;
            stop_tx.send(true).expect("stop");
            let ended = tokio::time::timeout(Duration::from_secs(5), task).await;
            ended.expect("the watch stops when told").expect("no panic");
        });
    }
    let ns = Netns::new();
    ns.ip("link add v0 type veth peer name v1");
    ns.child("address_watch_publishes_added_and_removed_addresses", "run");
}

fn spec_a() -> NatSpec {
    NatSpec {
        lan: "br-lan".into(),
        wan: Some("wan0".into()),
        masquerade: true,
        redirect_dns: Some(5353),
        redirect_http: Some(8080),
    }
}

fn spec_b() -> NatSpec {
    NatSpec {
        lan: "lan1".into(),
        wan: Some("eth0".into()),
        masquerade: false,
        redirect_dns: Some(1053),
        redirect_http: None,
    }
}

/// Tables that are not boma's, as Docker's iptables-nft and an operator might leave them.
const FOREIGN: &str = r#"table ip nat {
    chain DOCKER { }
    chain POSTROUTING {
        type nat hook postrouting priority srcnat; policy accept;
        ip saddr 198.18.0.0/24 oifname != "docker0" masquerade
    }
}
table inet other {
    chain input {
        type filter hook input priority 0; policy accept;
        tcp dport 22 accept
    }
}
"#;

#[test]
fn nft_apply_replaces_only_boma_table_and_remove_deletes_it() {
    if let Some(p) = phase() {
        match p.as_str() {
            "a" => nft::apply(&spec_a()).expect("apply a"),
            "b" => {
                nft::apply(&spec_b()).expect("apply b");
                nft::apply(&spec_b()).expect("apply b again");
            }
            _ => {
                nft::remove().expect("remove");
                nft::remove().expect("remove an absent table");
            }
        }
        return;
    }
    let ns = Netns::new();
    ns.nft_file(FOREIGN);
    let before = ns.nft("list ruleset");
    assert!(before.contains("table inet other") && !before.contains("boma"));
    let test = "nft_apply_replaces_only_boma_table_and_remove_deletes_it";
    for (phase, spec) in [("a", spec_a()), ("b", spec_b())] {
        ns.child(test, phase);
        assert_eq!(ns.nft("list table inet boma"), nft::render(&spec));
        // The other tables are listed first, unchanged; boma's table is re-created, so last.
        assert_eq!(
            ns.nft("list ruleset"),
            format!("{before}{}", nft::render(&spec))
        );
    }
    ns.child(test, "remove");
    assert_eq!(ns.nft("list ruleset"), before);
}

#[test]
fn a_refused_batch_names_the_message_and_changes_nothing() {
    if phase().is_some() {
        let err = nft::apply(&spec_a()).unwrap_err();
        assert!(
            matches!(
                &err,
                NftError::Refused {
                    index: 0,
                    errno: 1,
                    ..
                }
            ),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(
            text.contains("add table inet boma") && text.contains("errno 1"),
            "{text}"
        );
        assert_eq!(nft::remove().unwrap_err().errno(), Some(1));
        return;
    }
    let ns = Netns::new();
    ns.nft_file(FOREIGN);
    // A table `inet boma` owned by another process's netlink socket (nft -i, kept running):
    // the kernel refuses every change to it from anyone else with EPERM.
    let mut owner = ns.spawn(&["nft", "-i"]);
    owner.write("add table inet boma { flags owner; }\nadd chain inet boma keep\n");
    let listed = retry(50, || {
        let tables = ns.nft("list tables");
        tables.contains("table inet boma").then_some(())
    });
    assert!(listed.is_some(), "the owned table did not appear");
    let before = ns.nft("list ruleset");
    ns.child(
        "a_refused_batch_names_the_message_and_changes_nothing",
        "run",
    );
    assert_eq!(ns.nft("list ruleset"), before);
}

/// Client netns ─ lan-c ═ lan-g ─ [br-lan] gateway netns [wan0] ─ wan-s ═ wan netns.
struct Topology {
    gw: Netns,
    client: Netns,
    wan: Netns,
}

fn topology() -> Topology {
    let t = Topology {
        gw: Netns::new(),
        client: Netns::new(),
        wan: Netns::new(),
    };
    let (g, c, w) = (&t.gw.name, &t.client.name, &t.wan.name);
    must(&[
        "ip", "link", "add", "lan-g", "netns", g, "type", "veth", "peer", "name", "lan-c", "netns",
        c,
    ]);
    must(&[
        "ip", "link", "add", "wan0", "netns", g, "type", "veth", "peer", "name", "wan-s", "netns",
        w,
    ]);
    t.client.ip("addr add 10.99.1.2/24 dev lan-c");
    t.client.ip("link set lan-c up");
    t.client.ip("route add default via 10.99.1.1");
    t.wan.ip("addr add 198.51.100.2/24 dev wan-s");
    t.wan.ip("link set wan-s up");
    t.wan.ip("route add 10.99.1.0/24 via 198.51.100.1");
    t
}

/// One line read over TCP from `addr:port` inside `ns`, or None when the connection failed.
fn tcp_line(ns: &Netns, target: &str) -> Option<String> {
    let connect = format!("TCP4:{target},connect-timeout=2");
    let out = ns.try_exec(
        &["socat", "-T3", "-u", &connect, "-"],
        Duration::from_secs(10),
    );
    out.status
        .success()
        .then_some(out.stdout.trim().to_string())
}

#[test]
fn redirect_masquerade_and_forward_filter_carry_real_packets() {
    let test = "redirect_masquerade_and_forward_filter_carry_real_packets";
    if let Some(p) = phase() {
        if p == "links" {
            return block_on(async {
                links::setup_lan(&lan("br-lan", &["lan-g"]))
                    .await
                    .expect("lan");
                let wan_addr = Ipv4Addr::new(198, 51, 100, 1);
                let gw = Some(Ipv4Addr::new(198, 51, 100, 2));
                links::setup_wan_static("wan0", wan_addr, 24, gw)
                    .await
                    .expect("wan");
                links::set_ipv4_forwarding(true).expect("forwarding");
            });
        }
        let spec = NatSpec {
            redirect_http: None,
            ..spec_a()
        };
        return nft::apply(&spec).expect("apply");
    }
    let t = topology();
    t.gw.child(test, "links");
    // Plain routing first: the WAN side reaches a LAN client, and the client is seen as itself.
    let _client_srv = t.client.spawn(&[
        "socat",
        "TCP4-LISTEN:9090,reuseaddr,fork",
        "SYSTEM:echo client",
    ]);
    let _wan_srv = t.wan.spawn(&[
        "socat",
        "TCP4-LISTEN:8080,reuseaddr,fork",
        "SYSTEM:echo $SOCAT_PEERADDR",
    ]);
    let reached = retry(25, || tcp_line(&t.wan, "10.99.1.2:9090"));
    assert_eq!(
        reached.as_deref(),
        Some("client"),
        "routing works before the table"
    );
    let seen = retry(25, || tcp_line(&t.client, "198.51.100.2:8080"));
    assert_eq!(seen.as_deref(), Some("10.99.1.2"));

    t.gw.child(test, "nft");
    // Masquerade: the WAN server now sees the gateway's WAN address.
    assert_eq!(
        tcp_line(&t.client, "198.51.100.2:8080").as_deref(),
        Some("198.51.100.1")
    );
    // The forward filter: new connections from the WAN to the LAN are dropped.
    assert_eq!(tcp_line(&t.wan, "10.99.1.2:9090"), None);

    // DNS to any address is redirected to the gateway's own port 5353; the answer comes back
    // from the address the client asked (the connected socket accepts nothing else).
    let _dns =
        t.gw.spawn(&["socat", "UDP4-RECVFROM:5353,fork", "SYSTEM:echo gw-dns"]);
    let answer = retry(25, || {
        let out = t.client.try_exec(
            &["sh", "-c", "echo q | socat -T1 - UDP4:198.51.100.53:53"],
            Duration::from_secs(10),
        );
        let line = out.stdout.trim().to_string();
        (!line.is_empty()).then_some(line)
    });
    assert_eq!(answer.as_deref(), Some("gw-dns"));
}
