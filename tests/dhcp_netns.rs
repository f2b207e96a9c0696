//! The DHCP server with real clients: boma runs in a gateway network namespace and makes the
//! LAN bridge itself; busybox `udhcpc`, ISC `dhclient` and `dhcpcd` (with its DUID client
//! identifier) in client namespaces get addresses, router, DNS server, domain and lease time
//! from it; their names resolve in the local zone; a static host gets its address; a restarted
//! boma gives the same client the same lease; an exhausted pool gives no offer and no crash; garbage on port 67 is dropped; and a second DHCP
//! server on the LAN (dnsmasq) stops boma from serving, visibly in the API.

mod net_support;
mod support;

use std::path::Path;
use std::time::Duration;

use net_support::{Leased, Netns, cable, dhclient, dhcpcd, udhcpc, wait_for};
use support::Boma;

const STATIC_MAC: &str = "52:54:00:be:ef:02";

/// A gateway namespace with `n` client namespaces cabled to ports `p1..pn` of its future
/// bridge `br0`.
fn lan(n: usize) -> (Netns, Vec<Netns>) {
    let gw = Netns::new("gw");
    let clients: Vec<Netns> = (1..=n)
        .map(|i| {
            let c = Netns::new("cl");
            let mac = if i == 2 { Some(STATIC_MAC) } else { None };
            cable(&gw, &format!("p{i}"), &c, "eth0", mac);
            c
        })
        .collect();
    (gw, clients)
}

fn gateway_toml(ports: usize, range: (&str, &str), extra: &str) -> String {
    let members: Vec<String> = (1..=ports).map(|i| format!("\"p{i}\"")).collect();
    format!(
        r#"
[entryPoints.traefik]
address = "127.0.0.1:0"
[api]
insecure = true

[lan]
interface = "br0"
address = "10.77.0.1/24"
bridge = [{}]

[dhcp]
range = ["{}", "{}"]
lease_time = "1h"
state_dir = "{{dir}}/state"
rogue_check_interval = "2s"
[[dhcp.hosts]]
mac = "{STATIC_MAC}"
address = "10.77.0.50"
name = "printer"

[dns]
listen = ["0.0.0.0:53"]
address = "auto"
upstreams = []
{extra}
"#,
        members.join(", "),
        range.0,
        range.1
    )
}

/// GET an API path from inside the gateway namespace.
fn api(gw: &Netns, boma: &Boma, path: &str) -> String {
    let url = format!("http://{}{path}", boma.addr("traefik"));
    let out = gw.try_exec(&["curl", "-sf", "--max-time", "5", &url]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn resolve(ns: &Netns, server: &str, name: &str) -> String {
    let out = ns.try_exec(&[
        "kdig",
        "+short",
        "+time=2",
        "+retry=1",
        &format!("@{server}"),
        name,
    ]);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn real_clients_get_leases_names_and_keep_them_across_a_restart() {
    let (gw, clients) = lan(3);
    // The state directory outlives the first boma: the second must find the leases there.
    let state = tempfile::tempdir().expect("state dir");
    let toml = gateway_toml(3, ("10.77.0.100", "10.77.0.120"), "")
        .replace("{dir}/state", &state.path().display().to_string());
    let boma = Boma::start_in(Some(&gw.name), &toml, None);
    let dir = boma.dir.path().to_path_buf();

    let a = udhcpc_gets_a_pool_lease(&clients[0], &dir);
    let b = dhclient_gets_the_static_hosts_address(&clients[1], &dir);
    let c = dhcpcd_gets_a_third_address(&clients[2], &dir, &a, &b);
    names_resolve_and_the_api_lists_the_leases(&gw, &boma, &clients, &a, &c);
    the_lease_file_is_dnsmasqs_format(state.path(), &a, &c);
    a_restarted_boma_restores_the_leases(&gw, &clients, boma, &toml, &a);
}

/// busybox `udhcpc` gets an address from the pool with the gateway as router, DNS server and
/// DHCP server, the local domain and the hour's lease.
fn udhcpc_gets_a_pool_lease(client: &Netns, dir: &Path) -> Leased {
    let a = udhcpc(client, "eth0", "alpha", dir).expect("udhcpc gets a lease");
    let last: u8 =
        a.ip.rsplit('.')
            .next()
            .and_then(|x| x.parse().ok())
            .unwrap_or(0);
    assert!(
        a.ip.starts_with("10.77.0.") && (100..=120).contains(&last),
        "{a:?}"
    );
    assert_eq!(
        (a.router.as_str(), a.dns.as_str()),
        ("10.77.0.1", "10.77.0.1"),
        "{a:?}"
    );
    assert_eq!(
        (a.domain.as_str(), a.lease.as_str()),
        ("village.lan", "3600"),
        "{a:?}"
    );
    assert_eq!(a.server, "10.77.0.1");
    a
}

/// ISC `dhclient`, on the static host's MAC, gets the static host's address, router, domain and
/// lease time.
fn dhclient_gets_the_static_hosts_address(client: &Netns, dir: &Path) -> Leased {
    let b = dhclient(client, "eth0", dir).expect("dhclient gets a lease");
    assert_eq!(
        b.ip, "10.77.0.50",
        "the static host gets its address: {b:?}"
    );
    assert_eq!(
        (b.router.as_str(), b.domain.as_str()),
        ("10.77.0.1", "village.lan")
    );
    assert_eq!(b.lease, "3600");
    b
}

/// `dhcpcd` identifies itself by a DUID (client identifier 255 + IAID + DUID) and gets a third
/// address, with router and lease time.
fn dhcpcd_gets_a_third_address(client: &Netns, dir: &Path, a: &Leased, b: &Leased) -> Leased {
    let c = dhcpcd(client, "eth0", "delta", dir).expect("dhcpcd gets a lease");
    assert!(
        c.ip != a.ip && c.ip != b.ip,
        "three clients, three addresses: {a:?} {b:?} {c:?}"
    );
    assert_eq!(
        (c.router.as_str(), c.lease.as_str()),
        ("10.77.0.1", "3600"),
        "{c:?}"
    );
    c
}

/// Names: the clients' own and the static host's resolve in the local zone, any other name of
/// it to the gateway's LAN address (`address = "auto"`); the API lists the leases.
fn names_resolve_and_the_api_lists_the_leases(
    gw: &Netns,
    boma: &Boma,
    clients: &[Netns],
    a: &Leased,
    c: &Leased,
) {
    let alpha = wait_for(Duration::from_secs(5), || {
        let r = resolve(&clients[1], "10.77.0.1", "alpha.village.lan");
        (r == a.ip).then_some(r)
    });
    assert!(
        alpha.is_some(),
        "alpha.village.lan does not resolve to {}",
        a.ip
    );
    let delta = wait_for(Duration::from_secs(5), || {
        (resolve(&clients[0], "10.77.0.1", "delta.village.lan") == c.ip).then_some(())
    });
    assert!(
        delta.is_some(),
        "delta.village.lan (dhcpcd's name) does not resolve to {}",
        c.ip
    );
    let printer = wait_for(Duration::from_secs(5), || {
        (resolve(&clients[0], "10.77.0.1", "printer.village.lan") == "10.77.0.50").then_some(())
    });
    assert!(printer.is_some(), "printer.village.lan");
    assert_eq!(
        resolve(&clients[0], "10.77.0.1", "anything.village.lan"),
        "10.77.0.1"
    );
    let leases = api(gw, boma, "/api/dhcp/leases");
    assert!(
        leases.contains("\"alpha\"") && leases.contains("52:54:00:be:ef:02"),
        "{leases}"
    );
}

/// The lease file is dnsmasq's format, with the names and dhcpcd's DUID client id.
fn the_lease_file_is_dnsmasqs_format(state: &Path, a: &Leased, c: &Leased) {
    let file = std::fs::read_to_string(state.join("leases")).expect("lease file");
    assert!(
        file.lines()
            .any(|l| l.contains(&a.ip) && l.contains(" alpha ")),
        "{file}"
    );
    let duid = format!(" {} delta ff:", c.ip);
    assert!(
        file.lines().any(|l| l.contains(&duid)),
        "dhcpcd's DUID client id kept: {file}"
    );
}

/// boma restarted on the first one's `state_dir` restores its leases from the lease file
/// before any client asks again: the API lists the lease and its name resolves (the first
/// boma's memory is gone with its process); the same client, asking afresh with a new
/// DISCOVER, then gets the same address.
fn a_restarted_boma_restores_the_leases(
    gw: &Netns,
    clients: &[Netns],
    boma: Boma,
    toml: &str,
    a: &Leased,
) {
    drop(boma);
    let boma = Boma::start_in(Some(&gw.name), toml, None);
    let listed = wait_for(Duration::from_secs(5), || {
        let leases = api(gw, &boma, "/api/dhcp/leases");
        (leases.contains("\"alpha\"") && leases.contains(&format!("\"{}\"", a.ip))).then_some(())
    });
    assert!(
        listed.is_some(),
        "the restarted boma lists alpha's lease: {}",
        api(gw, &boma, "/api/dhcp/leases")
    );
    let named = wait_for(Duration::from_secs(5), || {
        (resolve(&clients[1], "10.77.0.1", "alpha.village.lan") == a.ip).then_some(())
    });
    assert!(
        named.is_some(),
        "the restored lease's name resolves (it answers {:?})",
        resolve(&clients[1], "10.77.0.1", "alpha.village.lan")
    );
    clients[0].exec(&["ip", "addr", "flush", "dev", "eth0"]);
    let again = udhcpc(&clients[0], "eth0", "alpha", boma.dir.path()).expect("lease after restart");
    assert_eq!(again.ip, a.ip, "a restarted boma gives the same lease");
}

#[test]
fn exhausted_pool_gives_nothing_and_garbage_is_dropped() {
    let (gw, clients) = lan(3);
    let toml = gateway_toml(3, ("10.77.0.100", "10.77.0.100"), "");
    let boma = Boma::start_in(Some(&gw.name), &toml, None);
    let dir = boma.dir.path().to_path_buf();
    let first = udhcpc(&clients[0], "eth0", "one", &dir).expect("the only address");
    assert_eq!(first.ip, "10.77.0.100");
    // Garbage, a truncated packet and a BOOTREPLY to port 67: dropped, counted, no crash.
    let mut reply = vec![0u8; 300];
    reply[0] = 2;
    for (i, payload) in [vec![0u8], vec![1, 1, 6, 0, 0, 0, 0, 0], reply]
        .iter()
        .enumerate()
    {
        let path = dir.join(format!("garbage{i}"));
        std::fs::write(&path, payload).expect("write");
        let from = format!("OPEN:{}", path.display());
        clients[0].exec(&["socat", "-u", &from, "UDP4-DATAGRAM:10.77.0.1:67"]);
    }
    assert!(
        udhcpc(&clients[2], "eth0", "three", &dir).is_none(),
        "no second address in a pool of one"
    );
    // The first client still renews; the server is alive.
    let renewed = udhcpc(&clients[0], "eth0", "one", &dir).expect("renewal");
    assert_eq!(renewed.ip, first.ip);
    let stats = api(&gw, &boma, "/api/dhcp");
    assert!(
        stats.contains("\"malformed\":3") || stats.contains("\"malformed\": 3"),
        "{stats}"
    );
    assert!(stats.contains("\"exhausted\""), "{stats}");
}

#[test]
fn another_dhcp_server_on_the_lan_stops_boma() {
    let (gw, clients) = lan(2);
    // Port p2 goes to a rogue namespace running dnsmasq instead of a client.
    let rogue = &clients[1];
    rogue.exec(&["ip", "addr", "add", "10.77.0.2/24", "dev", "eth0"]);
    let mut dnsmasq = rogue
        .command("dnsmasq")
        .args([
            "-d",
            "-C",
            "/dev/null",
            "-p",
            "0",
            "-i",
            "eth0",
            "--bind-interfaces",
            "--no-ping",
        ])
        .args([
            "--dhcp-range=10.77.0.200,10.77.0.210,1h",
            "--dhcp-leasefile=/dev/null",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("dnsmasq");
    let toml = gateway_toml(2, ("10.77.0.100", "10.77.0.120"), "");
    let boma = Boma::start_in(Some(&gw.name), &toml, None);
    let problems = wait_for(Duration::from_secs(10), || {
        let p = api(&gw, &boma, "/api/problems");
        p.contains("another DHCP server (10.77.0.2)").then_some(p)
    });
    assert!(
        problems.is_some(),
        "the API shows the rogue server: {}",
        api(&gw, &boma, "/api/problems")
    );
    let dir = boma.dir.path().to_path_buf();
    let got = udhcpc(&clients[0], "eth0", "victim", &dir).expect("a lease from dnsmasq");
    assert_eq!(
        got.server, "10.77.0.2",
        "only the other server answered: {got:?}"
    );
    // Once it is gone, boma serves.
    let _ = dnsmasq.kill();
    let _ = dnsmasq.wait();
    let served = wait_for(Duration::from_secs(15), || {
        clients[0].exec(&["ip", "addr", "flush", "dev", "eth0"]);
        udhcpc(&clients[0], "eth0", "victim", &dir).filter(|l| l.server == "10.77.0.1")
    });
    assert!(
        served.is_some(),
        "boma serves once the other server is gone"
    );
    let cleared = wait_for(Duration::from_secs(5), || {
        (!api(&gw, &boma, "/api/problems").contains("another DHCP server")).then_some(())
    });
    assert!(cleared.is_some(), "the problem clears once boma serves");
}

#[test]
fn a_lan_port_that_appears_after_start_is_taken_up() {
    // boma starts with its bridge member missing (a USB adapter not plugged in yet): it serves
    // its API at once and sets the LAN up when the port appears.
    let gw = Netns::new("lgw");
    let client = Netns::new("lcl");
    let toml = gateway_toml(1, ("10.77.0.100", "10.77.0.120"), "");
    let boma = Boma::start_in(Some(&gw.name), &toml, None);
    let status = api(&gw, &boma, "/api/dhcp");
    assert!(status.contains("\"failed\""), "no LAN yet: {status}");
    cable(&gw, "p1", &client, "eth0", None);
    let dir = boma.dir.path().to_path_buf();
    let lease = wait_for(Duration::from_secs(30), || {
        udhcpc(&client, "eth0", "late", &dir)
    });
    let lease = lease.expect("a lease once the port is there");
    assert_eq!(lease.router, "10.77.0.1");
    assert!(api(&gw, &boma, "/api/dhcp").contains("\"serving\""));
}

/// Crash consistency: boma is SIGKILLed at a random moment of a storm of lease writes, round
/// after round on the same state directory; after each kill the lease file parses whole and
/// holds every lease the server had acknowledged.
#[test]
fn every_acknowledged_lease_survives_sigkill() {
    let (gw, clients) = lan(1);
    let client = &clients[0];
    client.exec(&["ip", "addr", "add", "10.77.0.2/24", "dev", "eth0"]);
    let state = tempfile::tempdir().expect("state dir");
    let acked = state.path().join("acked.txt");
    let storm = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/dhcp_support/storm.py");
    let toml = gateway_toml(1, ("10.77.0.100", "10.77.0.250"), "")
        .replace(
            "{dir}/state",
            &state.path().join("leases-dir").display().to_string(),
        )
        .replace("rogue_check_interval = \"2s\"", "rogue_check = false");
    let lease_file = state.path().join("leases-dir/leases");
    const ROUNDS: u8 = 8;
    for round in 0..ROUNDS {
        let boma = Boma::start_in(Some(&gw.name), &toml, None);
        let mut storm_run = client
            .command("python3")
            .args([
                storm,
                &round.to_string(),
                "18",
                &(100 + round * 18).to_string(),
            ])
            .arg(&acked)
            .spawn()
            .expect("python3 runs the storm");
        // Kill somewhere inside the storm (different moments in different rounds).
        std::thread::sleep(Duration::from_millis(40 + u64::from(round) * 45));
        drop(boma); // SIGKILL
        let _ = storm_run.wait();
        let file = std::fs::read_to_string(&lease_file).unwrap_or_default();
        for line in file.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            assert_eq!(fields.len(), 5, "round {round}: a torn line `{line}`");
            assert!(
                fields[0].parse::<u64>().is_ok() && fields[2].parse::<std::net::Ipv4Addr>().is_ok(),
                "{line}"
            );
        }
        let acked_text = std::fs::read_to_string(&acked).unwrap_or_default();
        for ack in acked_text.lines() {
            let (mac, ip) = ack.split_once(' ').expect("mac ip");
            assert!(
                file.lines().any(|l| l.contains(&format!(" {mac} {ip} "))),
                "round {round}: acknowledged {mac} {ip} is not in the lease file:\n{file}"
            );
        }
    }
    let acked_total = std::fs::read_to_string(&acked)
        .unwrap_or_default()
        .lines()
        .count();
    eprintln!("{acked_total} acknowledged leases over {ROUNDS} killed rounds, all on disk");
    assert!(
        acked_total >= 20,
        "the storms got {acked_total} ACKs: too few to mean anything"
    );
}
