use super::wire::tests::{attrs, headers};
use super::*;

fn full() -> NatSpec {
    NatSpec {
        lan: "br-lan".into(),
        wan: Some("wan0".into()),
        masquerade: true,
        redirect_dns: Some(5353),
        redirect_http: Some(8080),
    }
}

#[test]
fn render_matches_what_nft_lists() {
    // Captured from `nft list table inet boma` (nftables 1.0.6) for the same table.
    let expected = "table inet boma {
\tchain prerouting {
\t\ttype nat hook prerouting priority dstnat; policy accept;
\t\tiifname \"br-lan\" udp dport 53 redirect to :5353
\t\tiifname \"br-lan\" tcp dport 53 redirect to :5353
\t\tiifname \"br-lan\" tcp dport 80 redirect to :8080
\t}

\tchain postrouting {
\t\ttype nat hook postrouting priority srcnat; policy accept;
\t\toifname \"wan0\" masquerade
\t}

\tchain forward {
\t\ttype filter hook forward priority filter; policy accept;
\t\tiifname \"wan0\" oifname \"br-lan\" ct state established,related accept
\t\tiifname \"wan0\" oifname \"br-lan\" drop
\t}
}
";
    assert_eq!(render(&full()), expected);
}

#[test]
fn chains_without_rules_are_left_out() {
    let lan_only = NatSpec {
        lan: "lan".into(),
        redirect_dns: Some(53),
        ..NatSpec::default()
    };
    let text = render(&lan_only);
    assert!(text.contains("chain prerouting"));
    assert!(!text.contains("chain postrouting") && !text.contains("chain forward"));
    assert!(!text.contains("dport 80"));

    // A WAN without masquerade still filters, but does not masquerade.
    let no_masq = NatSpec {
        masquerade: false,
        ..full()
    };
    assert!(!render(&no_masq).contains("postrouting"));
    assert!(render(&no_masq).contains("chain forward"));
    // Masquerade without a WAN has nothing to match.
    let no_wan = NatSpec {
        wan: None,
        redirect_dns: None,
        redirect_http: None,
        ..full()
    };
    assert_eq!(render(&no_wan), "table inet boma {\n}\n");
}

#[test]
fn the_apply_batch_replaces_the_table_then_builds_it() {
    let sealed = encode_apply(&full(), 1);
    let labels: Vec<&str> = sealed.labels.iter().map(String::as_str).collect();
    assert_eq!(
        &labels[..6],
        [
            "add table inet boma",
            "delete table inet boma",
            "add table inet boma",
            "add chain prerouting",
            "add rule prerouting iifname \"br-lan\" udp dport 53 redirect to :5353",
            "add rule prerouting iifname \"br-lan\" tcp dport 53 redirect to :5353",
        ]
    );
    // 3 table messages, 3 chains, 6 rules, between BATCH_BEGIN and BATCH_END.
    assert_eq!(labels.len(), 12);
    let h = headers(&sealed.bytes);
    assert_eq!(h.len(), 14);
    let types: Vec<u16> = h[1..13].iter().map(|m| m.1 & 0xff).collect();
    assert_eq!(types, [0, 2, 0, 3, 6, 6, 6, 3, 6, 3, 6, 6]);
    assert_eq!(encode_remove(1).labels.len(), 2);
}

/// The message at position `index` among the batch's nf_tables messages (without the headers).
fn message(sealed: &Sealed, index: usize) -> &[u8] {
    let mut off = 0;
    for (i, (len, ..)) in headers(&sealed.bytes).into_iter().enumerate() {
        if i == index + 1 {
            return &sealed.bytes[off + 20..off + len as usize];
        }
        off += (len as usize + 3) & !3;
    }
    panic!("no message {index}");
}

fn expr_names(rule_msg: &[u8]) -> Vec<String> {
    let top = attrs(rule_msg);
    let (_, nested, list) = top.iter().find(|a| a.0 == 4).expect("expressions");
    assert!(nested);
    attrs(list)
        .iter()
        .map(|(ty, nested, elem)| {
            assert_eq!((*ty, *nested), (1, true));
            let name = attrs(elem)[0].2;
            String::from_utf8(name[..name.len() - 1].to_vec()).unwrap()
        })
        .collect()
}

/// The NFTA_DATA_VALUE inside expression `n`'s attribute `attr` (cmp data, immediate data).
fn expr_value(rule_msg: &[u8], n: usize, attr: u16) -> Vec<u8> {
    let top = attrs(rule_msg);
    let list = top.iter().find(|a| a.0 == 4).unwrap().2;
    let elem = attrs(list)[n].2;
    let data = attrs(elem).iter().find(|a| a.0 == 2).unwrap().2;
    let holder = attrs(data).iter().find(|a| a.0 == attr).unwrap().2;
    attrs(holder)[0].2.to_vec()
}

#[test]
fn a_redirect_rule_checks_the_protocol_before_loading_the_port() {
    let sealed = encode_apply(&full(), 1);
    let rule = message(&sealed, 4); // iifname "br-lan" udp dport 53 redirect to :5353
    assert_eq!(
        expr_names(rule),
        [
            "meta",
            "cmp",
            "meta",
            "cmp",
            "payload",
            "cmp",
            "immediate",
            "redir"
        ]
    );
    assert_eq!(expr_value(rule, 1, 3), b"br-lan\0\0\0\0\0\0\0\0\0\0");
    assert_eq!(expr_value(rule, 3, 3), [17]);
    assert_eq!(expr_value(rule, 5, 3), [0, 53]);
    assert_eq!(expr_value(rule, 6, 2), 5353u16.to_be_bytes());
}

#[test]
fn masquerade_and_forward_rules_have_the_expected_expressions() {
    let sealed = encode_apply(&full(), 1);
    assert_eq!(expr_names(message(&sealed, 8)), ["meta", "cmp", "masq"]);
    let established = message(&sealed, 10);
    assert_eq!(
        expr_names(established),
        [
            "meta",
            "cmp",
            "meta",
            "cmp",
            "ct",
            "bitwise",
            "cmp",
            "immediate"
        ]
    );
    assert_eq!(expr_value(established, 5, 4), 6u32.to_ne_bytes());
    assert_eq!(expr_value(established, 6, 3), [0, 0, 0, 0]);
    assert_eq!(
        expr_names(message(&sealed, 11)),
        ["meta", "cmp", "meta", "cmp", "immediate"]
    );
}

#[test]
fn bad_names_and_ports_are_refused_before_anything_is_sent() {
    for bad in ["", "sixteen-bytes-xx", "a b", "a/b", "a\"b", "a:1"] {
        let spec = NatSpec {
            lan: bad.into(),
            ..NatSpec::default()
        };
        assert!(matches!(apply(&spec), Err(NftError::BadName(_))), "{bad:?}");
    }
    let spec = NatSpec {
        wan: Some("x y".into()),
        ..full()
    };
    assert!(matches!(apply(&spec), Err(NftError::BadName(_))));
    let spec = NatSpec {
        redirect_http: Some(0),
        ..full()
    };
    assert!(matches!(apply(&spec), Err(NftError::BadPort(_))));
    assert_eq!(ifname_bytes("eth0")[..5], *b"eth0\0");
}
