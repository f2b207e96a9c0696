//! ipAllowList / ipWhiteList and the ipStrategy selection.

use super::*;

/// (config, peer address, X-Forwarded-For lines, expected status: None = allowed)
type Case<'a> = (&'a str, &'a str, &'a [&'a str], Option<u16>);

fn check(cases: &[Case]) {
    for &(src, peer, xff, want) in cases {
        let m = mw(src);
        let headers: Vec<(&str, &str)> = xff.iter().map(|v| ("x-forwarded-for", *v)).collect();
        let mut r = req("GET", "/", &headers);
        let got = run(&m, &mut r, &mut ctx_from(peer, "http"));
        let status = got.as_ref().map(|resp| resp.status().as_u16());
        assert_eq!(status, want, "{src} peer={peer} xff={xff:?}");
        if let Some(resp) = got {
            let reason = resp.status().canonical_reason().unwrap_or_default();
            assert_eq!(resp.body().as_ref(), reason.as_bytes());
        }
    }
}

#[test]
fn remote_address_like_traefik() {
    let one = "[ipAllowList]\nsourceRange = [\"20.20.20.20\"]";
    let reject_404 = "[ipAllowList]\nsourceRange = [\"20.20.20.20\"]\nrejectStatusCode = 404";
    check(&[
        (one, "20.20.20.20", &[], None),
        (one, "20.20.20.21", &[], Some(403)),
        (reject_404, "20.20.20.20", &[], None),
        (reject_404, "20.20.20.21", &[], Some(404)),
        (
            "[ipWhiteList]\nsourceRange = [\"20.20.20.20\"]",
            "20.20.20.21",
            &[],
            Some(403),
        ),
        // The peer address wins over X-Forwarded-For without a strategy.
        (one, "1.1.1.1", &["20.20.20.20"], Some(403)),
    ]);
}

#[test]
fn ranges() {
    let v4 = "[ipAllowList]\nsourceRange = [\"10.0.0.0/8\", \"192.168.1.7\"]";
    let v6 = "[ipAllowList]\nsourceRange = [\"2001:db8::/32\", \"::1\"]";
    let mapped = "[ipAllowList]\nsourceRange = [\"::ffff:10.0.0.0/104\"]";
    let everything = "[ipAllowList]\nsourceRange = [\"0.0.0.0/0\", \"::/0\"]";
    check(&[
        (v4, "10.255.0.1", &[], None),
        (v4, "11.0.0.1", &[], Some(403)),
        (v4, "192.168.1.7", &[], None),
        (v4, "192.168.1.8", &[], Some(403)),
        (v4, "::ffff:10.1.2.3", &[], None),
        (v4, "2001:db8::1", &[], Some(403)),
        (v6, "2001:db8:ffff::1", &[], None),
        (v6, "2001:db9::1", &[], Some(403)),
        (v6, "::1", &[], None),
        (v6, "10.0.0.1", &[], Some(403)),
        (mapped, "10.9.9.9", &[], None),
        (mapped, "11.9.9.9", &[], Some(403)),
        (everything, "203.0.113.9", &[], None),
        (everything, "2001:db8::9", &[], None),
        (
            "[ipAllowList]\nsourceRange = [\"10.1.2.3/8\"]",
            "10.200.0.1",
            &[],
            None,
        ),
    ]);
    for bad in [
        "foo",
        "10.0.0.0/33",
        "1.2.3.4/",
        "1.2.3.4/+8",
        "::1/129",
        "10.0.0.1/08x",
        " 10.0.0.1",
        "10.0.0.1/-1",
    ] {
        let e = compile_err(&format!("[ipAllowList]\nsourceRange = [\"{bad}\"]"));
        assert!(e.contains("invalid IP or CIDR"), "{bad}: {e}");
    }
    assert!(compile_err("[ipAllowList]\nsourceRange = []").contains("empty"));
    for code in [600, 299, -1, 99] {
        let e = compile_err(&format!(
            "[ipAllowList]\nsourceRange = [\"1.2.3.4\"]\nrejectStatusCode = {code}"
        ));
        assert!(e.contains("invalid HTTP status code"), "{code}: {e}");
    }
}

#[test]
fn depth_strategy() {
    let cfg = |depth: u32| {
        format!(
            "[ipAllowList]\nsourceRange = [\"20.20.20.20\"]\n[ipAllowList.ipStrategy]\ndepth = {depth}"
        )
    };
    let (d1, d2, d3, d4) = (cfg(1), cfg(2), cfg(3), cfg(4));
    let xff: &[&str] = &["10.0.0.1, 20.20.20.20, 30.30.30.30"];
    check(&[
        (&d1, "1.1.1.1", xff, Some(403)),
        (&d2, "1.1.1.1", xff, None),
        (&d3, "1.1.1.1", xff, Some(403)),
        (&d4, "1.1.1.1", xff, Some(403)),
        (&d1, "1.1.1.1", &[], Some(403)),
        // Several header lines read as one comma-separated list.
        (
            &d2,
            "1.1.1.1",
            &["10.0.0.1, 20.20.20.20", "30.30.30.30"],
            None,
        ),
        (&d1, "1.1.1.1", &["20.20.20.20:4711"], None),
        (&d1, "1.1.1.1", &["not-an-ip"], Some(403)),
        (&d1, "1.1.1.1", &[" , "], Some(403)),
        (&cfg(0), "20.20.20.20", xff, None),
    ]);
}

#[test]
fn excluded_ips_strategy() {
    let cfg = "[ipAllowList]\nsourceRange = [\"20.20.20.20\"]\n[ipAllowList.ipStrategy]\nexcludedIPs = [\"30.30.30.30\", \"10.0.0.0/8\"]";
    check(&[
        (
            cfg,
            "1.1.1.1",
            &["10.0.0.1, 20.20.20.20, 30.30.30.30"],
            None,
        ),
        (
            cfg,
            "1.1.1.1",
            &["20.20.20.20, 10.0.0.1, 30.30.30.30"],
            None,
        ),
        (
            cfg,
            "1.1.1.1",
            &["20.20.20.20, 40.0.0.1, 30.30.30.30"],
            Some(403),
        ),
        (cfg, "1.1.1.1", &["20.20.20.20, , 30.30.30.30, "], None),
        (cfg, "1.1.1.1", &["10.0.0.1, 30.30.30.30"], Some(403)),
        (cfg, "20.20.20.20", &[], Some(403)),
        (cfg, "1.1.1.1", &["[::1]:99, 30.30.30.30"], Some(403)),
    ]);
    let e = compile_err(
        "[ipAllowList]\nsourceRange = [\"1.1.1.1\"]\n[ipAllowList.ipStrategy]\nexcludedIPs = [\"nope\"]",
    );
    assert!(e.contains("nope"), "{e}");
}

#[test]
fn ipv6_subnet() {
    let remote = "[ipAllowList]\nsourceRange = [\"2001:db8:1:2::\"]\n[ipAllowList.ipStrategy]\nipv6Subnet = 64";
    let depth = "[ipAllowList]\nsourceRange = [\"2001:db8:1:2::\"]\n[ipAllowList.ipStrategy]\ndepth = 1\nipv6Subnet = 64";
    let zoned = "[ipAllowList]\nsourceRange = [\"fe80::/10\"]\n[ipAllowList.ipStrategy]\ndepth = 1";
    check(&[
        (remote, "2001:db8:1:2:aaaa::1", &[], None),
        (remote, "2001:db8:1:3::1", &[], Some(403)),
        (depth, "1.1.1.1", &["2001:db8:1:2:ffff::9"], None),
        (depth, "1.1.1.1", &["2001:db8:1:2::9%eth0"], None),
        (zoned, "1.1.1.1", &["fe80::1%eth0"], None),
    ]);
    for (strategy, n) in [("", 0), ("", 129), ("depth = 2\n", -3)] {
        let e = compile_err(&format!(
            "[ipAllowList]\nsourceRange = [\"::1\"]\n[ipAllowList.ipStrategy]\n{strategy}ipv6Subnet = {n}"
        ));
        assert!(e.contains("invalid IPv6 subnet"), "{e}");
    }
    // Traefik ignores ipv6Subnet with excludedIPs.
    mw(
        "[ipAllowList]\nsourceRange = [\"::1\"]\n[ipAllowList.ipStrategy]\nexcludedIPs = [\"::2\"]\nipv6Subnet = 0",
    );
}

#[test]
fn hostile_forwarded_for() {
    let m =
        mw("[ipAllowList]\nsourceRange = [\"20.20.20.20\"]\n[ipAllowList.ipStrategy]\ndepth = 3");
    let long = vec!["1.2.3.4"; 20_000].join(",");
    for value in [
        long.as_bytes(),
        b"\xff\xfe, 20.20.20.20",
        b",,,,",
        b"[",
        b"[::1",
        b"::::::::::::",
    ] {
        let mut r = req("GET", "/", &[]);
        r.headers.insert(
            "x-forwarded-for",
            http::HeaderValue::from_bytes(value).expect("header"),
        );
        let got = run(&m, &mut r, &mut ctx());
        assert_eq!(got.map(|resp| resp.status().as_u16()), Some(403));
    }
}

#[test]
fn ip_strategy_errors_name_the_field() {
    let e = toml::from_str::<MiddlewareConfig>(
        "[ipAllowList]\nsourceRange = [\"1.1.1.1\"]\n[ipAllowList.ipStrategy]\ndepht = 1",
    )
    .expect_err("typo");
    assert!(e.to_string().contains("depht"), "{e}");
}
