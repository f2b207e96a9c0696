//! The qemu-virt gateway on its LAN, from the client namespace of support/netns.rs, in the second
//! boot of the qemu-virt test: the lease from boma's pool, DNS (direct and redirected), the proxy
//! on the LAN address, NAT to the QEMU namespace's loopback.

use std::path::Path;
use std::time::Duration;

use boma_image::qemu::Guest;

use super::guest::poll;
use super::support;
use super::support::netns;

/// The gateway on its LAN, from the client namespace: DHCP, DNS (direct and redirected), the
/// proxy on the LAN address, NAT to the QEMU namespace's loopback. The client's address.
pub fn check_lan(
    g: &Guest,
    lan: &netns::Lan,
    dhcp: &mut netns::Dhcp,
    token: &str,
    dir: &Path,
) -> String {
    let log = |what: &str| {
        format!(
            "{what}\nudhcpc: {}\nconsole:\n{}",
            std::fs::read_to_string(dir.join("udhcpc.log")).unwrap_or_default(),
            g.console()
        )
    };
    let lease = lease_from_the_lan_pool(g, dhcp, &log);
    let gw = vec!["10.66.0.1".to_string()];
    dns_and_proxy_answer_on_the_lan(lan, &lease, &gw, &log);
    nat_and_the_dns_redirect_work_from_the_lan(g, lan, token, &gw, &log);
    lease.ip
}

/// A DHCP lease in boma's LAN pool with the mask, router, DNS server and domain the board sets
/// (QEMU start → lease is a figure).
fn lease_from_the_lan_pool(
    g: &Guest,
    dhcp: &mut netns::Dhcp,
    log: &dyn Fn(&str) -> String,
) -> netns::Leased {
    let Some((lease, at)) = dhcp.wait(Duration::from_secs(90)) else {
        panic!("{}", log("no DHCP lease from boma on the LAN"));
    };
    support::figure(&format!(
        "qemu-virt gateway: QEMU start → DHCP lease for a client on the LAN (boma's rogue-server probe listens 4 s first): {:.2} s",
        at.duration_since(g.started).as_secs_f64()
    ));
    let last: u8 = lease
        .ip
        .strip_prefix("10.66.0.")
        .and_then(|l| l.parse().ok())
        .unwrap_or_else(|| panic!("lease {lease:?} outside 10.66.0.0/24"));
    assert!(
        (100..=250).contains(&last),
        "lease {lease:?} outside the pool"
    );
    assert_eq!(
        (
            lease.mask.as_str(),
            lease.router.as_str(),
            lease.dns.as_str(),
            lease.domain.as_str()
        ),
        ("24", "10.66.0.1", "10.66.0.1", "village.lan"),
        "{lease:?}"
    );
    lease
}

/// `gateway.village.lan` resolves to the gateway (`gw`) through the DNS server the lease gave,
/// over UDP and TCP, and the proxy on that address serves the API.
fn dns_and_proxy_answer_on_the_lan(
    lan: &netns::Lan,
    lease: &netns::Leased,
    gw: &[String],
    log: &dyn Fn(&str) -> String,
) {
    // The image's route name through boma's DNS at the server the lease gave, UDP and TCP.
    for tcp in [false, true] {
        let got = netns::dig(&lan.client, &lease.dns, "gateway.village.lan", tcp);
        assert_eq!(
            got.as_deref(),
            Some(gw),
            "{}",
            log(&format!("DNS on the LAN (tcp: {tcp})"))
        );
    }
    // The proxy on the address DNS gave.
    let resolve = format!("gateway.village.lan:80:{}", gw[0]);
    let body = netns::curl(
        &lan.client,
        &[
            "--resolve",
            &resolve,
            "-u",
            "admin:village",
            "http://gateway.village.lan/api/version",
        ],
    );
    assert!(
        body.as_deref()
            .is_some_and(|b| b.contains("\"Codename\":\"boma\"")),
        "{}",
        log(&format!("proxy on the LAN: {body:?}"))
    );
}

/// The guest's NAT takes the client to the QEMU namespace's loopback (QEMU start → reached is a
/// figure), and a DNS query to an address that is not boma's is answered by boma.
fn nat_and_the_dns_redirect_work_from_the_lan(
    g: &Guest,
    lan: &netns::Lan,
    token: &str,
    gw: &[String],
    log: &dyn Fn(&str) -> String,
) {
    // NAT: masqueraded out of eth0 into QEMU's user network, whose 10.0.2.2 is the loopback of
    // the QEMU namespace. The table may come a little later (modules loaded in the background).
    let nat = poll(g, Duration::from_secs(60), || {
        netns::curl(&lan.client, &["http://10.0.2.2:8000/nat.txt"]).filter(|b| b.trim() == token)
    });
    let Some((_, nat_at)) = nat else {
        panic!("{}", log("no NAT from the LAN to 10.0.2.2:8000"));
    };
    support::figure(&format!(
        "qemu-virt gateway: QEMU start → a LAN client reaches the WAN side through NAT: {:.2} s",
        nat_at.as_secs_f64()
    ));
    // The DNS redirect: a query to an address that is not boma's is answered by boma.
    let redirected = poll(g, Duration::from_secs(30), || {
        netns::dig(&lan.client, "10.66.99.99", "gateway.village.lan", false).filter(|a| *a == gw)
    });
    assert!(
        redirected.is_some(),
        "{}",
        log("DNS to 10.66.99.99 not redirected to boma")
    );
}
