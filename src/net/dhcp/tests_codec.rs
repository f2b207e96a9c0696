//! Codec fixtures: client messages built byte by byte (as udhcpc, dhclient and systemd-networkd
//! send them) and malformed ones, and replies read back with smoltcp's own parser.

use super::*;

const MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];

/// A BOOTREQUEST with `options` (after the magic cookie; END is appended).
fn request(options: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 240];
    b[0] = 1; // BOOTREQUEST
    b[1] = 1; // Ethernet
    b[2] = 6;
    b[4..8].copy_from_slice(&0xdead_beefu32.to_be_bytes());
    b[10] = 0x80; // broadcast flag
    b[28..34].copy_from_slice(&MAC);
    b[236..240].copy_from_slice(&[99, 130, 83, 99]);
    b.extend_from_slice(options);
    b.push(255);
    b
}

fn net() -> Network {
    Network::example()
}

#[test]
fn parses_a_request_with_every_option_boma_reads() {
    let duid = [255, 0, 0, 0, 1, 0, 2, 0, 0, 0xab, 0x11, 1, 2, 3, 4];
    let mut opts = vec![
        53, 1, 3, 50, 4, 10, 9, 0, 100, 54, 4, 10, 9, 0, 1, 57, 2, 5, 220,
    ];
    opts.extend_from_slice(&[61, duid.len() as u8]);
    opts.extend_from_slice(&duid);
    opts.extend_from_slice(&[12, 9]);
    opts.extend_from_slice(b"Laptop.x.");
    opts.extend_from_slice(&[55, 4, 1, 3, 6, 121, 0, 0]); // two PADs
    let buf = request(&opts);
    let m = parse(&buf).expect("parses");
    assert_eq!(m.kind, MessageType::Request);
    assert_eq!((m.xid, m.broadcast, m.chaddr), (0xdead_beef, true, MAC));
    assert_eq!(m.requested_ip, Some(Ipv4Addr::new(10, 9, 0, 100)));
    assert_eq!(m.server_id, Some(Ipv4Addr::new(10, 9, 0, 1)));
    assert_eq!(m.client_id, Some(&duid[..]));
    assert_eq!(m.max_size, Some(1500));
    assert!(m.wants(121) && !m.wants(28));
    assert_eq!(m.host_label().as_deref(), Some("laptop"));
}

#[test]
fn fqdn_wins_over_hostname_in_both_encodings() {
    // E flag set: wire-format labels.
    let mut opts = vec![53, 1, 1, 12, 3, b'o', b'l', b'd', 81, 12, 0x05, 0, 0, 5];
    opts.extend_from_slice(b"phone");
    opts.extend_from_slice(&[3, b'l', b'a', b'n']);
    let buf = request(&opts);
    assert_eq!(
        parse(&buf).expect("parses").host_label().as_deref(),
        Some("phone")
    );
    // E flag clear: text.
    let mut opts = vec![53, 1, 1, 81, 12, 0x01, 0, 0];
    opts.extend_from_slice(b"tab.lan.");
    let buf = request(&opts);
    assert_eq!(
        parse(&buf).expect("parses").host_label().as_deref(),
        Some("tab")
    );
    // Invalid names are no name.
    let buf = request(&[53, 1, 1, 12, 4, b'a', b' ', b'b', b'!']);
    assert_eq!(parse(&buf).expect("parses").host_label(), None);
}

#[test]
fn malformed_packets_say_why() {
    let good = request(&[53, 1, 1]);
    let cases: Vec<(Vec<u8>, Malformed)> = vec![
        (good[..100].to_vec(), Malformed::Truncated),
        (
            {
                let mut b = good.clone();
                b[0] = 2;
                b
            },
            Malformed::NotRequest,
        ),
        (
            {
                let mut b = good.clone();
                b[2] = 8;
                b
            },
            Malformed::NotEthernet,
        ),
        (
            {
                let mut b = good.clone();
                b[236] = 0;
                b
            },
            Malformed::NoMagic,
        ),
        (request(&[12, 1, b'x']), Malformed::NoMessageType),
        (request(&[53, 1, 2]), Malformed::WrongMessageType),
        (request(&[53, 2, 1, 1]), Malformed::BadOption(53)),
        (
            request(&[53, 1, 3, 50, 3, 1, 2, 3]),
            Malformed::BadOption(50),
        ),
    ];
    for (buf, want) in cases {
        assert_eq!(parse(&buf), Err(want));
    }
    // An option running past the end stops the walk; what came before still counts.
    let mut b = request(&[53, 1, 1]);
    b.pop();
    b.extend_from_slice(&[12, 200, b'x']);
    assert_eq!(parse(&b).map(|m| m.hostname), Ok(None));
}

#[test]
fn an_ack_carries_the_lan_and_smoltcp_reads_it_back() {
    let mut opts = vec![53, 1, 3, 55, 3, 1, 3, 121];
    opts.extend_from_slice(&[61, 7, 1]);
    opts.extend_from_slice(&MAC);
    let buf = request(&opts);
    let msg = parse(&buf).expect("parses");
    let reply = Reply {
        kind: MessageType::Ack,
        to: &msg,
        yiaddr: Ipv4Addr::new(10, 9, 0, 100),
        ciaddr: Ipv4Addr::UNSPECIFIED,
        lease: Some(3600),
        hostname: Some("printer"),
        message: None,
    };
    let mut out = vec![0u8; MAX_REPLY];
    let len = emit(&reply, &net(), &mut out).expect("emits");
    assert!((300..=MAX_REPLY).contains(&len));
    let packet = DhcpPacket::new_checked(&out[..len]).expect("checked");
    let repr = DhcpRepr::parse(&packet).expect("smoltcp parses it");
    assert_eq!(repr.message_type, MessageType::Ack);
    assert_eq!((repr.transaction_id, repr.broadcast), (0xdead_beef, true));
    assert_eq!(repr.your_ip, Ipv4Addr::new(10, 9, 0, 100));
    assert_eq!(repr.router, Some(Ipv4Addr::new(10, 9, 0, 1)));
    assert_eq!(repr.subnet_mask, Some(Ipv4Addr::new(255, 255, 255, 0)));
    assert_eq!(repr.lease_duration, Some(3600));
    assert_eq!(
        (repr.renew_duration, repr.rebind_duration),
        (Some(1800), Some(3150))
    );
    assert_eq!(
        repr.client_identifier,
        Some(EthernetAddress(MAC)),
        "client id echoed"
    );
    let opts: Vec<(u8, Vec<u8>)> = raw_options(&out[OPTIONS_START..len])
        .map(|(c, d)| (c, d.to_vec()))
        .collect();
    let get = |c: u8| opts.iter().find(|(k, _)| *k == c).map(|(_, d)| d.clone());
    assert_eq!(get(15).as_deref(), Some(&b"village.lan"[..]));
    assert_eq!(get(12).as_deref(), Some(&b"printer"[..]));
    assert_eq!(get(28).as_deref(), Some(&[10, 9, 0, 255][..]));
    assert_eq!(get(121).as_deref(), Some(&[0, 10, 9, 0, 1][..]));
    assert_eq!(get(6).as_deref(), Some(&[10, 9, 0, 1][..]));
}

#[test]
fn a_nak_has_no_lease_options() {
    let buf = request(&[53, 1, 3]);
    let msg = parse(&buf).expect("parses");
    let reply = Reply {
        kind: MessageType::Nak,
        to: &msg,
        yiaddr: Ipv4Addr::UNSPECIFIED,
        ciaddr: Ipv4Addr::UNSPECIFIED,
        lease: Some(60),
        hostname: None,
        message: Some("no"),
    };
    let mut out = vec![0u8; MAX_REPLY];
    let len = emit(&reply, &net(), &mut out).expect("emits");
    let codes: Vec<u8> = raw_options(&out[OPTIONS_START..len])
        .map(|(c, _)| c)
        .collect();
    assert_eq!(codes, [53, 54, 56]);
}

#[test]
fn the_probe_and_an_offer() {
    let mut out = vec![0u8; MAX_REPLY];
    let len = discover_probe(7, [2, 0x62, 0x6f, 0x6d, 0x61, 1], &mut out).expect("emits");
    let probe = parse(&out[..len]).expect("a server parses the probe");
    assert_eq!((probe.kind, probe.broadcast), (MessageType::Discover, true));
    let reply = Reply {
        kind: MessageType::Offer,
        to: &probe,
        yiaddr: Ipv4Addr::new(10, 9, 0, 7),
        ciaddr: Ipv4Addr::UNSPECIFIED,
        lease: Some(60),
        hostname: None,
        message: None,
    };
    let mut offer = vec![0u8; MAX_REPLY];
    let n = emit(&reply, &net(), &mut offer).expect("emits");
    assert_eq!(
        parse_offer(&offer[..n]),
        Some((7, Ipv4Addr::new(10, 9, 0, 1)))
    );
    assert_eq!(parse_offer(&out[..len]), None, "a DISCOVER is no offer");
}
