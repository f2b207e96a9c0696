//! Lease table fixtures: allocation, requests in every client state, declines, releases, the
//! file format and restore.

use super::*;

const MAC1: [u8; 6] = [0x52, 0x54, 0, 0, 0, 1];
const MAC2: [u8; 6] = [0x52, 0x54, 0, 0, 0, 2];
const STATIC_MAC: [u8; 6] = [0x52, 0x54, 0, 0, 0, 9];

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 9, 0, last)
}

fn times() -> Times {
    Times {
        lease: 3600,
        offer_hold: 60,
        decline: 600,
    }
}

fn table(first: u8, last: u8) -> Table {
    let fixed = vec![Fixed {
        mac: STATIC_MAC,
        addr: ip(10),
        name: Some("printer".into()),
    }];
    Table::new(ip(first), ip(last), ip(1), fixed, times())
}

fn req<'a>(mac: [u8; 6], key: &'a Key, ip: Ipv4Addr, selecting: bool) -> Request<'a> {
    Request {
        mac,
        key,
        client_id: None,
        ip,
        hostname: Some("laptop".into()),
        selecting,
        authoritative: true,
    }
}

#[test]
fn discover_request_ack_and_the_same_address_again() {
    let mut t = table(100, 110);
    let k = key(MAC1, None);
    let offered = t.offer(MAC1, &k, None, 1000).expect("an offer");
    assert!((100..=110).contains(&offered.octets()[3]));
    let Verdict::Ack(lease) = t.request(req(MAC1, &k, offered, true), 1001) else {
        panic!("no ack");
    };
    assert_eq!(
        (lease.addr, lease.expires, lease.hostname.as_str()),
        (offered, 4601, "laptop")
    );
    // Renewal, and a new DISCOVER long after expiry: the same address.
    assert!(matches!(
        t.request(req(MAC1, &k, offered, false), 2000),
        Verdict::Ack(_)
    ));
    assert_eq!(t.active(2000).len(), 1);
    assert!(
        t.active(100_000).is_empty(),
        "expired leases are not active"
    );
    assert_eq!(t.offer(MAC1, &k, None, 100_000), Some(offered));
}

#[test]
fn two_clients_never_share_and_exhaustion_gives_none() {
    let mut t = table(100, 101);
    let (k1, k2, k3) = (key(MAC1, None), key(MAC2, None), key([1; 6], None));
    let a = t.offer(MAC1, &k1, None, 0).expect("first");
    let b = t.offer(MAC2, &k2, Some(a), 0).expect("second");
    assert_ne!(a, b, "a held offer is not offered twice");
    assert_eq!(
        t.offer([1; 6], &k3, None, 0),
        None,
        "pool of two is exhausted"
    );
    // Another client asking for a leased address is refused.
    assert!(matches!(
        t.request(req(MAC1, &k1, a, true), 1),
        Verdict::Ack(_)
    ));
    assert_eq!(t.request(req(MAC2, &k2, a, false), 2), Verdict::Nak);
    // An offer not taken frees up after the hold time.
    assert!(t.offer([1; 6], &k3, None, 61).is_some());
}

#[test]
fn static_hosts_get_their_address_and_nobody_else_does() {
    let mut t = table(1, 20);
    let ks = key(STATIC_MAC, None);
    assert_eq!(t.offer(STATIC_MAC, &ks, Some(ip(15)), 0), Some(ip(10)));
    let Verdict::Ack(l) = t.request(req(STATIC_MAC, &ks, ip(10), true), 0) else {
        panic!("static host not acked");
    };
    assert_eq!(l.hostname.as_str(), "printer", "the configured name wins");
    assert_eq!(
        t.request(req(STATIC_MAC, &ks, ip(15), false), 0),
        Verdict::Nak
    );
    let k1 = key(MAC1, None);
    assert_eq!(t.request(req(MAC1, &k1, ip(10), false), 0), Verdict::Nak);
    assert_eq!(
        t.request(req(MAC1, &k1, ip(1), false), 0),
        Verdict::Nak,
        "gateway"
    );
    for i in 0..40u8 {
        let k = key([9, 9, 9, 9, 9, i], None);
        if let Some(a) = t.offer([9, 9, 9, 9, 9, i], &k, None, 0) {
            assert!(a != ip(10) && a != ip(1), "reserved address {a} offered");
        }
    }
}

#[test]
fn init_reboot_authoritative_or_not() {
    let mut t = table(100, 110);
    let k = key(MAC1, None);
    // Unknown client asking for a free address: ACK when authoritative, silence otherwise.
    let mut r = req(MAC1, &k, ip(105), false);
    r.authoritative = false;
    assert_eq!(t.request(r.clone(), 0), Verdict::Ignore);
    r.authoritative = true;
    assert!(matches!(t.request(r, 0), Verdict::Ack(_)));
    // Outside the pool: NAK when authoritative.
    assert_eq!(
        t.request(req(MAC1, &k, Ipv4Addr::new(192, 0, 2, 1), false), 0),
        Verdict::Nak
    );
}

#[test]
fn decline_keeps_the_address_out_and_release_keeps_the_binding() {
    let mut t = table(100, 100);
    let k1 = key(MAC1, None);
    let a = t.offer(MAC1, &k1, None, 0).expect("offer");
    assert!(t.decline(&k1, a, 0));
    assert_eq!(
        t.offer(MAC1, &k1, None, 10),
        None,
        "declined address not offered"
    );
    assert_eq!(
        t.offer(MAC1, &k1, None, 601),
        Some(a),
        "back after decline_time"
    );
    assert!(matches!(
        t.request(req(MAC1, &k1, a, true), 601),
        Verdict::Ack(_)
    ));
    assert!(t.release(&k1, a, 700));
    assert!(t.active(700).is_empty());
    assert_eq!(
        t.offer(MAC1, &k1, None, 800),
        Some(a),
        "released client gets it back"
    );
    assert!(
        !t.release(&key(MAC2, None), a, 800),
        "others cannot release it"
    );
}

#[test]
fn client_identifier_is_the_key_when_sent() {
    let mut t = table(100, 110);
    let duid: &[u8] = &[255, 0, 0, 0, 1, 0, 4, 1, 2, 3, 4];
    let k = key(MAC1, Some(duid));
    let a = t.offer(MAC1, &k, None, 0).expect("offer");
    let mut r = req(MAC1, &k, a, true);
    r.client_id = Some(duid);
    assert!(matches!(t.request(r, 0), Verdict::Ack(_)));
    // Same MAC, no client id: another client as far as the table goes.
    let other = key(MAC1, None);
    assert_eq!(t.request(req(MAC1, &other, a, false), 1), Verdict::Nak);
}

#[test]
fn names_move_to_the_newest_lease() {
    let mut t = table(100, 110);
    let (k1, k2) = (key(MAC1, None), key(MAC2, None));
    assert!(matches!(
        t.request(req(MAC1, &k1, ip(100), false), 0),
        Verdict::Ack(_)
    ));
    assert!(matches!(
        t.request(req(MAC2, &k2, ip(101), false), 1),
        Verdict::Ack(_)
    ));
    let names: Vec<String> = t.active(2).iter().map(|l| l.hostname.to_string()).collect();
    assert_eq!(names, ["", "laptop"]);
}

#[test]
fn file_round_trip_and_bad_lines() {
    let mut t = table(100, 110);
    let duid: &[u8] = &[1, 0x52, 0x54, 0, 0, 0, 1];
    let k1 = key(MAC1, Some(duid));
    let mut r = req(MAC1, &k1, ip(100), false);
    r.client_id = Some(duid);
    assert!(matches!(t.request(r, 0), Verdict::Ack(_)));
    let k2 = key(STATIC_MAC, None);
    assert!(matches!(
        t.request(req(STATIC_MAC, &k2, ip(10), false), 0),
        Verdict::Ack(_)
    ));
    let file = t.to_file();
    assert!(
        file.contains("3600 52:54:00:00:00:01 10.9.0.100 laptop 01:52:54:00:00:00:01\n"),
        "{file}"
    );
    assert!(
        file.contains("3600 52:54:00:00:00:09 10.9.0.10 printer *\n"),
        "{file}"
    );
    let mut back = table(100, 110);
    let text = format!(
        "{file}garbage\n1 52:54:00:00:00:03 10.9.0.200 x *\n1 zz 10.9.0.101 x *\n\
         1 52:54:00:00:00:04 10.9.0.100 other *\n1 52:54:00:00:00:05 10.9.0.10 thief *\n"
    );
    assert_eq!(back.restore(&text), (2, 5));
    assert_eq!(back.active(0), t.active(0));
    assert_eq!(back.to_file(), file);
}

#[test]
fn a_slot_stays_small() {
    // One slot per pool address, allocated at start: a /16 pool must not cost megabytes.
    assert!(
        std::mem::size_of::<Slot>() <= 24,
        "{}",
        std::mem::size_of::<Slot>()
    );
}

#[test]
fn merging_a_later_file_keeps_current_leases() {
    let mut t = table(100, 110);
    let k1 = key(MAC1, None);
    assert!(matches!(
        t.request(req(MAC1, &k1, ip(105), false), 0),
        Verdict::Ack(_)
    ));
    // A file found later (the data partition mounted after start): MAC1 at another address,
    // MAC2 at the address MAC1 holds now, a third client at a free one.
    let later = "900 52:54:00:00:00:01 10.9.0.101 laptop *\n\
                 900 52:54:00:00:00:02 10.9.0.105 other *\n\
                 900 52:54:00:00:00:03 10.9.0.107 third *\n";
    assert_eq!(t.restore(later), (1, 2));
    let now: Vec<(Ipv4Addr, [u8; 6])> = t.active(10).iter().map(|l| (l.addr, l.mac)).collect();
    assert_eq!(now, [(ip(105), MAC1), (ip(107), [0x52, 0x54, 0, 0, 0, 3])]);
}
